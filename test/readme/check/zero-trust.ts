import { strict as assert } from "node:assert";
import { path, served } from "../setup/zero-trust.ts";

export default function check(block: Record<string, unknown>): void {
  const result = block.result as { isError?: unknown; content?: unknown };
  assert.notEqual(result.isError, true, JSON.stringify(result));
  assert.match(JSON.stringify(result.content), /Launch moved to Thursday/);
  // The server decided the call from the token's chain and ran it.
  assert.deepEqual(served, [path]);
}
