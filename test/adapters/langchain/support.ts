import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BaseMessage, ToolMessage } from "@langchain/core/messages";
import type { StructuredToolInterface } from "@langchain/core/tools";
import { MultiServerMCPClient } from "@langchain/mcp-adapters";
import { createMiddleware } from "langchain";
import type { ActorInput } from "../../../src/index.ts";
import { alice } from "../../support/users.ts";

const filesystemServer = fileURLToPath(
  new URL("../../../node_modules/@modelcontextprotocol/server-filesystem/dist/index.js", import.meta.url),
);

/** A temp workspace served by the real `server-filesystem` over stdio, through `@langchain/mcp-adapters`. */
export interface Workspace {
  dir: string;
  mcp: MultiServerMCPClient;
  /** The server's tools, unguarded, as `loadMcpTools` makes them (no name prefix). */
  tools: StructuredToolInterface[];
  /** alice, an engineer whose workspace is `dir`. */
  user: ActorInput;
  /** Stops the server and deletes `dir`: call it from the test file's `afterAll`. */
  close(): Promise<void>;
}

/** Starts a workspace for the calling test file; `close()` it after its tests. */
export async function startWorkspace(name: string): Promise<Workspace> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `hopguard-langchain-${name}-`)));
  const mcp = new MultiServerMCPClient({
    mcpServers: {
      filesystem: { transport: "stdio", command: process.execPath, args: [filesystemServer, dir], stderr: "ignore" },
    },
  });
  const close = async (): Promise<void> => {
    await mcp.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const tools = await mcp.getTools();
  return { dir, mcp, tools, user: { ...alice, attr: { ...alice.attr, workspace: dir } }, close };
}

/** A middleware that records the tool names each model call is offered; put it after the one under test. */
export function toolsOffered() {
  const offered: string[][] = [];
  const middleware = createMiddleware({
    name: "tools-offered",
    wrapModelCall: async (request, handler) => {
      offered.push(request.tools.map((tool) => String(tool.name)));
      return handler(request);
    },
  });
  return { middleware, offered };
}

/** The tool messages of a run, by tool call id. */
export function toolMessages(messages: readonly BaseMessage[]): Map<string, ToolMessage> {
  return new Map(
    messages
      .filter((message) => message.type === "tool")
      .map((message) => {
        const tool = message as ToolMessage;
        return [tool.tool_call_id, tool];
      }),
  );
}
