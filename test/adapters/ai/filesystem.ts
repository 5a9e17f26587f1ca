import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createMCPClient, type MCPClient } from "@ai-sdk/mcp";
import { StdioMCPTransport } from "@ai-sdk/mcp/mcp-stdio";
import type { ToolSet } from "ai";
import type { ActorInput } from "../../../src/index.ts";
import { alice } from "../../support/users.ts";

const serverEntry = fileURLToPath(
  new URL("../../../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js", import.meta.url),
);

/** The real `@modelcontextprotocol/server-filesystem` over stdio, serving a fresh temp folder through `@ai-sdk/mcp`. */
export interface FilesystemFixture {
  /** The served folder: alice's workspace. */
  workspace: string;
  /** alice, engineering user, whose `attr.workspace` is the served folder. */
  alice: ActorInput;
  /** `client.tools()`: the server's tools as the AI SDK sees them. */
  tools: ToolSet;
  close(): Promise<void>;
}

export async function startFilesystem(): Promise<FilesystemFixture> {
  const workspace = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-ai-")));
  const client: MCPClient = await createMCPClient({
    transport: new StdioMCPTransport({ command: process.execPath, args: [serverEntry, workspace], stderr: "ignore" }),
  });
  return {
    workspace,
    alice: { ...alice, attr: { ...alice.attr, workspace } },
    tools: await client.tools(),
    close: async () => {
      await client.close();
      rmSync(workspace, { recursive: true, force: true });
    },
  };
}
