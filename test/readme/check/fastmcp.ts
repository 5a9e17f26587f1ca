// alice reads her file; bob's read of it is refused and nothing ran.
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { alicesFile, port } from "../setup/fastmcp.ts";

export default async function check(_block: Record<string, unknown>): Promise<void> {
  const connect = async (key: string) => {
    const client = new Client({ name: "readme-check", version: "0.0.0" });
    const url = new URL(`http://127.0.0.1:${port}/mcp`);
    await client.connect(
      new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${key}` } } }),
    );
    return client;
  };
  const alice = await connect("alice-key");
  const bob = await connect("bob-key");
  const read = (await alice.callTool({ name: "read_text_file", arguments: { path: alicesFile } })) as CallToolResult;
  const refused = (await bob.callTool({ name: "read_text_file", arguments: { path: alicesFile } })) as CallToolResult;
  assert.deepEqual(read.content, [{ type: "text", text: "alice's notes" }]);
  assert.equal(refused.isError, true);
  assert.match(JSON.stringify(refused.content), /hopguard refused filesystem\/read_text_file/);
}
