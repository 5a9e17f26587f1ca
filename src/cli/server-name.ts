import { CliError } from "./cli-error.ts";

/** What a server name must look like to make a Cerbos resource kind `mcp::<server>` hopguard can check. */
const validName = /^[A-Za-z][A-Za-z0-9_@.-]*$/;

/**
 * The server's name in policies: `--server` when given, else the name the server gave in `initialize` without its
 * "mcp" and "server" words (`secure-filesystem-server` → `secure-filesystem`, `mcp-server-fetch` → `fetch`).
 */
export function serverName(given: string | undefined, reported: string): string {
  if (given !== undefined) {
    if (!validName.test(given)) {
      throw new CliError(
        `--server "${given}": a server's name starts with a letter and has only letters, digits, _ @ . and -`,
      );
    }
    return given;
  }
  const words = reported
    .toLowerCase()
    .split(/[^a-z0-9_@.]+/)
    .filter((word) => word !== "" && word !== "mcp" && word !== "server");
  const name = words.join("-").replace(/^[^a-z]+/, "");
  return name === "" ? "server" : name;
}
