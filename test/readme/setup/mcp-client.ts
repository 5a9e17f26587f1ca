import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { mcpServers } from "../../../examples/support/mcp-servers.ts";
import { aliceWorkspace, coreChain } from "../support.ts";

export const workspace = aliceWorkspace();
export const { researcher } = await coreChain(workspace);
export const path = join(workspace, "draft.md");
export const client = new Client({ name: "readme", version: "1.0.0" });
await client.connect(new StdioClientTransport({ ...mcpServers.filesystem(workspace), stderr: "ignore" }));
