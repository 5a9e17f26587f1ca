import { strict as assert } from "node:assert";
import type { Decision, Guard } from "hopguard";

export default async function check(block: Record<string, unknown>): Promise<void> {
  const first = block.first as Decision;
  const read = block.read as (path: string) => Promise<Decision>;
  const guard = block.guard as Guard;
  assert.deepEqual(
    first.hops.map((hop) => hop.source),
    ["pdp"],
  );
  assert.equal((block.decision as Decision).allowed, true);
  // The block waits a fixed moment; on a busy machine the plan may take longer. It must come, and then answer.
  let decision = block.decision as Decision;
  for (let attempt = 0; attempt < 100 && decision.hops[0]?.source !== "residual"; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    decision = await read("/workspace/alice/b.md");
  }
  assert.deepEqual(
    decision.hops.map((hop) => hop.source),
    ["residual"],
  );
  assert.equal((await read("/workspace/alice/../bob/x.md")).allowed, false);
  assert.ok((guard.planCache?.stats().residualAnswers ?? 0) >= 2);
}
