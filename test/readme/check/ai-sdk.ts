import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { GenerateTextResult, ToolSet } from "ai";
import { workspace } from "../setup/ai-sdk.ts";

export default function check(block: Record<string, unknown>): void {
  const result = block.result as GenerateTextResult<ToolSet, never, never>;
  const parts = result.steps.flatMap((step) => step.content);
  const read = parts.find((part) => part.type === "tool-result" && part.toolCallId === "read");
  assert.match(JSON.stringify(read), /Launch moved to Thursday/);
  // The write never ran: hopguardToolApproval answered the SDK's approval request with hopguard's refusal.
  const answer = parts.find((part) => part.type === "tool-approval-response" && part.toolCall.toolCallId === "write");
  assert.ok(answer?.type === "tool-approval-response" && !answer.approved);
  assert.match(answer.reason ?? "", /denied by scope/);
  assert.ok(!parts.some((part) => part.type === "tool-result" && part.toolCallId === "write"));
  assert.equal(result.text, "The launch moved to Thursday.");
  assert.equal(readFileSync(join(workspace, "notes.md"), "utf8"), "Launch moved to Thursday.\n");
}
