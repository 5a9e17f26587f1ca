import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { ActorInput } from "hopguard";
import { generateKeyPair } from "jose";
import { z } from "zod";
import { aliceWorkspace, coreChain, sharedPdp } from "../support.ts";

export const workspace = aliceWorkspace();
export const { guard, researcher } = await coreChain(workspace);
export const path = join(workspace, "notes.md");
export const serverPdpClient = sharedPdp();
export const { privateKey, publicKey: agentHostPublicKeys } = await generateKeyPair("Ed25519");
export const directory: Record<string, ActorInput> = {};

/** The paths the server's tool handler read: what actually ran on the server. */
export const served: string[] = [];
export const mcpServer = new McpServer({ name: "filesystem", version: "1.0.0" });
mcpServer.registerTool(
  "read_text_file",
  { description: "Read a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
  async ({ path }) => {
    served.push(path);
    return { content: [{ type: "text", text: readFileSync(path, "utf8") }] };
  },
);

// One Streamable HTTP session, connected at the first request: after the block has guarded the server.
const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID() });
let connected: Promise<void> | undefined;
const http = createServer(async (req, res) => {
  connected ??= mcpServer.connect(transport);
  await connected;
  await transport.handleRequest(req, res);
});
http.listen(0, "127.0.0.1");
await once(http, "listening");
export const url = new URL(`http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`);
export const client = new Client({ name: "agent-host", version: "1.0.0" });
