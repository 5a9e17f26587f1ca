import { strict as assert } from "node:assert";
import type { Decision } from "hopguard";

export default function check(block: Record<string, unknown>): void {
  const decision = block.decision as Decision;
  assert.equal(decision.allowed, true);
  assert.equal(decision.deniedBy, undefined);
  assert.deepEqual(
    decision.hops.map((hop) => [hop.principalId, hop.effect]),
    [
      ["alice", "EFFECT_ALLOW"],
      ["planner", "EFFECT_ALLOW"],
      ["researcher", "EFFECT_ALLOW"],
    ],
  );
}
