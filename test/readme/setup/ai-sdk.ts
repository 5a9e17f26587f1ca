import { join } from "node:path";
import { createMCPClient } from "@ai-sdk/mcp";
import { StdioMCPTransport } from "@ai-sdk/mcp/mcp-stdio";
import { mcpServers } from "../../../examples/support/mcp-servers.ts";
import { scriptedModel } from "../../../examples/support/scripted-model.ts";
import { aliceWorkspace, coreChain } from "../support.ts";

export const workspace = aliceWorkspace();
export const { guard, researcher } = await coreChain(workspace);
export const mcpClient = await createMCPClient({
  transport: new StdioMCPTransport({ ...mcpServers.filesystem(workspace), stderr: "ignore" }),
});
// Reads notes.md (allowed for every hop), then tries to overwrite it (outside the researcher's scope).
export const model = scriptedModel(
  { calls: [{ id: "read", tool: "read_text_file", input: { path: join(workspace, "notes.md") } }] },
  { calls: [{ id: "write", tool: "write_file", input: { path: join(workspace, "notes.md"), content: "x" } }] },
  { text: "The launch moved to Thursday." },
);
