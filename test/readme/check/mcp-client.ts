import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { path } from "../setup/mcp-client.ts";

export default function check(block: Record<string, unknown>): void {
  const tools = block.tools as { name: string }[];
  const result = block.result as { isError?: unknown };
  const names = tools.map((tool) => tool.name);
  assert.ok(names.includes("read_text_file"));
  assert.ok(!names.includes("write_file"));
  assert.equal(result.isError, true);
  assert.equal(existsSync(path), false);
}
