import { resolve } from "node:path";
import { accessTable, printable } from "./access-table.ts";
import { cerbosCompile, compileVerdict } from "./cerbos-compile.ts";
import { CliError, ExitCode } from "./cli-error.ts";
import { writePolicyFiles } from "./policy-folder.ts";
import { createProgress } from "./progress.ts";
import { listServer, type McpSource } from "./server-listing.ts";
import { serverName } from "./server-name.ts";
import { starterPolicies } from "./starter-policies.ts";
import type { DestructivePolicy } from "./tool-access.ts";

/** Options of `hopguard init`. */
export interface InitOptions {
  readonly source: McpSource;
  /** The folder to write into. */
  readonly policies: string;
  readonly server?: string | undefined;
  readonly destructive: DestructivePolicy;
  readonly force: boolean;
  readonly timeoutMs: number;
  readonly quiet: boolean;
}

/**
 * `hopguard init`: lists a live MCP server, writes its starter policy set, runs `cerbos compile` on the folder and
 * prints who may call what. Resolves to the exit code.
 */
export async function initCommand(options: InitOptions): Promise<number> {
  const progress = createProgress({ quiet: options.quiet });
  const listing = await listServer(options.source, progress, options.timeoutMs);
  const server = serverName(options.server, listing.serverInfo.name);
  const policies = starterPolicies({ server, listing, destructive: options.destructive });
  const folder = resolve(options.policies);
  const outcomes = await writePolicyFiles(folder, policies.files, options.force);

  const out = (text = ""): void => {
    process.stdout.write(`${text}\n`);
  };
  out(`Starter policies for the MCP server "${server}" (resource kind mcp::${server}) in ${folder}:`);
  for (const [path, outcome] of outcomes) out(`  ${outcome.padEnd(11)}  ${path}`);

  const compiled = progress.step(`cerbos compile ${folder}`);
  const result = await cerbosCompile(folder);
  out();
  out(result.output);
  if (result.status !== 0) {
    throw new CliError(`cerbos compile ${folder}: ${compileVerdict(result.status)}`, { exitCode: ExitCode.denied });
  }
  compiled(compileVerdict(result.status));
  out();
  out(accessTable(policies));
  const patterns = policies.tools.filter((tool) => tool.patternName).map((tool) => printable(tool.tool));
  if (patterns.length > 0) {
    out();
    out(
      `Left out of every rule, so denied to everyone: ${patterns.join(", ")}. Cerbos reads * ? [ ] { } and \\ in ` +
        "an action as a pattern: a rule naming such a tool would match other tools too. Write its rule by hand.",
    );
  }
  const unannotated = listing.tools
    .filter((tool) => tool.annotations === undefined)
    .map((tool) => printable(tool.name));
  if (unannotated.length > 0) {
    out();
    out(`No annotations on ${unannotated.join(", ")}: taken as destructive and open-world, as MCP says.`);
  }
  return ExitCode.ok;
}
