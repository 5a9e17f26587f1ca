import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/** The entry script of an MCP server package's command, so it can run under this very Node. */
function binOf(name: string): string {
  const manifestPath = require.resolve(`${name}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as { bin: Record<string, string> };
  return join(dirname(manifestPath), Object.values(manifest.bin)[0] ?? "");
}

/** How to start the real MCP reference servers from npm, as stdio child processes. */
export const mcpServers = {
  filesystem: (root: string) => ({
    command: process.execPath,
    args: [binOf("@modelcontextprotocol/server-filesystem"), root],
  }),
  memory: (file: string) => ({
    command: process.execPath,
    args: [binOf("@modelcontextprotocol/server-memory")],
    env: { ...(process.env as Record<string, string>), MEMORY_FILE_PATH: file },
  }),
};
