import type { Decision } from "./decision.ts";

/**
 * Renders a decision as a small per-hop tree for logs and terminals:
 *
 * ```text
 * DENY  filesystem/write_file  denied by agent "planner" (hop 1 of alice → planner): may not call ...
 *   ├─ allow  alice (user)       resource.mcp::filesystem.vdefault
 *   └─ deny   planner (agent)    resource.mcp::filesystem.vdefault  ← denied here
 * ```
 *
 * A hop's Cerbos call id follows its policy when it has one (asked on its own, not in a batch); a hop answered by
 * the plan cache says so instead (`from plan`, `from residual`).
 */
export function formatDecisionTree(decision: Decision): string {
  const subject =
    decision.subject.type === "tool"
      ? `${decision.subject.server}/${decision.subject.tool}`
      : `delegate to ${decision.subject.agentId}`;
  const verdict = decision.allowed ? "ALLOW" : "DENY ";
  const lines = [`${verdict} ${subject}  ${decision.reason}`];
  if (decision.deniedBy === "scope") lines.push(`  └─ scope  ${decision.chain.join(" → ")}  ← denied here`);
  const width = Math.max(0, ...decision.hops.map((hop) => `${hop.principalId} (${hop.kind})`.length));
  decision.hops.forEach((hop, index) => {
    const branch = index === decision.hops.length - 1 ? "└─" : "├─";
    const effect = hop.effect === "EFFECT_ALLOW" ? "allow" : "deny ";
    const who = `${hop.principalId} (${hop.kind})`.padEnd(width);
    const here = hop.principalId === decision.deniedBy ? "  ← denied here" : "";
    const where =
      hop.source === "pdp"
        ? `${hop.policy || "no policy matched"}${hop.cerbosCallId ? `  ${hop.cerbosCallId}` : ""}`
        : `from ${hop.source}`;
    lines.push(`  ${branch} ${effect}  ${who}  ${where}${here}`);
  });
  return lines.join("\n");
}
