import { appendFileSync, copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/** The rule the MCP server's team adds to its copy of `mcp::filesystem`, on top of what the agent host's copy says. */
export const agentsNeverWrite = `
    # The server's own rule: people may write here, agents acting for them may not. For every role an agent holds
    # (Cerbos allows when any one role does, so a deny must match them all).
    - name: agents-never-write
      actions: ["write_file", "edit_file", "create_directory", "move_file"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: P.attr.kind == "agent"
`;

/**
 * Copies hopguard's policies into `dir` with {@link agentsNeverWrite} added: the stricter policy set of an MCP
 * server run by another team, on a PDP of its own. Returns `dir`.
 */
export function stricterPolicies(dir: string): string {
  const source = join(dirname(require.resolve("hopguard/package.json")), "policies");
  mkdirSync(dir);
  for (const file of readdirSync(source).filter((name) => name.endsWith(".yaml"))) {
    copyFileSync(join(source, file), join(dir, file));
  }
  appendFileSync(join(dir, "mcp_filesystem.yaml"), agentsNeverWrite);
  return dir;
}
