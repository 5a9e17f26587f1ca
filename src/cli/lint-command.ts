import { resolve } from "node:path";
import { table } from "./access-table.ts";
import { ExitCode } from "./cli-error.ts";
import { policyCoverage } from "./policy-coverage.ts";
import { readPolicyRules } from "./policy-rules.ts";
import { createProgress } from "./progress.ts";
import { listServer, type McpSource } from "./server-listing.ts";
import { serverName } from "./server-name.ts";

/** Options of `hopguard lint`. */
export interface LintOptions {
  readonly source: McpSource;
  readonly policies: string;
  readonly server?: string | undefined;
  readonly timeoutMs: number;
  readonly quiet: boolean;
}

/**
 * `hopguard lint`: what a live server offers that no policy covers, and rules that name tools it does not have.
 * Resolves to 1 when there is any, else 0.
 */
export async function lintCommand(options: LintOptions): Promise<number> {
  const folder = resolve(options.policies);
  const progress = createProgress({ quiet: options.quiet });
  const rules = await readPolicyRules(folder);
  const listing = await listServer(options.source, progress, options.timeoutMs);
  const server = serverName(options.server, listing.serverInfo.name);
  const { uncovered, unknown, noToolPolicy } = policyCoverage(server, listing, rules);
  const out = (text = ""): void => {
    process.stdout.write(`${text}\n`);
  };

  out(`${folder} against the MCP server "${server}" (mcp::${server}):`);
  if (noToolPolicy) out(`  no rule applies to kind mcp::${server} at all: is --server the name your policies use?`);
  if (uncovered.length > 0) {
    out();
    out(`Not covered by any policy (every principal gets "no matching policy"): ${uncovered.length}`);
    out(table([["kind", "name"], ...uncovered.map((item) => [item.what, item.name])]).replace(/^/gm, "  "));
  }
  if (unknown.length > 0) {
    out();
    out(`Rules naming what the server does not have: ${unknown.length}`);
    out(
      table([
        ["file", "rule", "action", "did you mean"],
        ...unknown.map((item) => [item.file, item.rule, item.action, item.suggestion ?? ""]),
      ]).replace(/^/gm, "  "),
    );
  }
  const findings = uncovered.length + unknown.length;
  out();
  out(
    findings === 0
      ? `No findings: every tool, resource and prompt of ${server} is covered, and every rule names one.`
      : `${findings} finding${findings === 1 ? "" : "s"}.`,
  );
  return findings === 0 ? ExitCode.ok : ExitCode.denied;
}
