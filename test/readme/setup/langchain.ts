import { join } from "node:path";
import { MultiServerMCPClient } from "@langchain/mcp-adapters";
import { AIMessage, fakeModel } from "langchain";
import { mcpServers } from "../../../examples/support/mcp-servers.ts";
import { aliceWorkspace, coreChain } from "../support.ts";

export const workspace = aliceWorkspace();
export const { researcher } = await coreChain(workspace);
export const mcpClient = new MultiServerMCPClient({
  mcpServers: { filesystem: { transport: "stdio", ...mcpServers.filesystem(workspace), stderr: "ignore" } },
});
// Reads notes.md (allowed for every hop), then tries to overwrite it (outside the researcher's scope).
export const model = fakeModel()
  .respondWithTools([{ name: "read_text_file", args: { path: join(workspace, "notes.md") }, id: "read" }])
  .respondWithTools([{ name: "write_file", args: { path: join(workspace, "notes.md"), content: "x" }, id: "write" }])
  .respond(new AIMessage("The launch moved to Thursday."));
