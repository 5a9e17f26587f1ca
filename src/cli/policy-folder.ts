import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CliError } from "./cli-error.ts";

/** What happened to each file: written anew, already there with the same text, or replaced (`--force`). */
export type FileOutcome = "written" | "unchanged" | "overwritten";

/**
 * Writes `files` (relative paths → text) into `folder`. A file that exists with other text is never replaced
 * without `force`: then nothing at all is written, and the error names every such file.
 */
export async function writePolicyFiles(
  folder: string,
  files: ReadonlyMap<string, string>,
  force: boolean,
): Promise<Map<string, FileOutcome>> {
  const outcomes = new Map<string, FileOutcome>();
  for (const [path, text] of files) {
    const existing = await readFile(join(folder, path), "utf8").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw new CliError(`cannot read ${join(folder, path)}: ${error.message}`, { cause: error });
    });
    outcomes.set(path, existing === undefined ? "written" : existing === text ? "unchanged" : "overwritten");
  }
  const clashes = [...outcomes].filter(([, outcome]) => outcome === "overwritten").map(([path]) => path);
  if (clashes.length > 0 && !force) {
    throw new CliError(
      `${folder} already has ${clashes.join(", ")} with other contents; nothing was written. ` +
        "Pass --force to overwrite, or choose another folder with --policies.",
    );
  }
  for (const [path, text] of files) {
    if (outcomes.get(path) === "unchanged") continue;
    const target = join(folder, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, text, "utf8");
  }
  return outcomes;
}
