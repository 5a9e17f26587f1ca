import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BaseMessage } from "@langchain/core/messages";
import { workspace } from "../setup/langchain.ts";

export default function check(block: Record<string, unknown>): void {
  const result = block.result as { messages: BaseMessage[] };
  const tools = result.messages.filter((message) => message.type === "tool");
  assert.equal(tools.length, 2);
  assert.match(String(tools[0]?.content), /Launch moved to Thursday/);
  assert.match(String(tools[1]?.content), /denied by scope/);
  assert.equal(readFileSync(join(workspace, "notes.md"), "utf8"), "Launch moved to Thursday.\n");
}
