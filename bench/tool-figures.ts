import { tool as langchainTool } from "@langchain/core/tools";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { tool as aiTool } from "ai";
import { z } from "zod";
import { guardTools as guardAiTools } from "../src/adapters/ai/index.ts";
import { guardTools as guardLangchainTools } from "../src/adapters/langchain/index.ts";
import { guardMcpClient } from "../src/adapters/mcp/index.ts";
import type { Delegation } from "../src/index.ts";
import { interleavedLatency, type LatencyFigure, round } from "./measure.ts";

const args = { path: "/workspace/alice/notes.md" };

/**
 * One tool call, unguarded and through each adapter, at the same chain depth. The tool does no work, so the
 * difference is what the guard costs.
 */
export async function toolFigures(
  delegation: Delegation,
  count: number,
): Promise<Record<string, Record<string, number>>> {
  // Two identical servers: guarding a client gates its transport for good, so the baseline needs its own.
  const raw = await connectBenchServer();
  const gated = await connectBenchServer();
  try {
    const client = raw.client;
    const guarded = guardMcpClient(gated.client, { server: "bench", delegation });

    const readFile = langchainTool(async ({ path }: { path: string }) => path, {
      name: "read_file",
      description: "Reads a file",
      schema: z.object({ path: z.string() }),
    });
    const [guardedReadFile] = guardLangchainTools([readFile], { server: "bench", delegation });

    const aiTools = {
      read_file: aiTool({ inputSchema: z.object({ path: z.string() }), execute: async ({ path }) => path }),
    };
    const guardedAiTools = guardAiTools(aiTools, { server: "bench", delegation });
    const callOptions = { toolCallId: "bench", messages: [], context: {} };
    const [unguarded, viaMcp, langchainUnguarded, langchainGuarded, aiUnguarded, aiGuarded] = (await interleavedLatency(
      [
        () => client.callTool({ name: "read_file", arguments: args }),
        () => guarded.callTool({ name: "read_file", arguments: args }),
        () => readFile.invoke(args),
        () => (guardedReadFile as typeof readFile).invoke(args),
        async () => aiTools.read_file.execute?.(args, callOptions),
        async () => guardedAiTools.read_file.execute?.(args, callOptions),
      ],
      count,
    )) as LatencyFigure[] as [LatencyFigure, LatencyFigure, LatencyFigure, LatencyFigure, LatencyFigure, LatencyFigure];

    const versus = (guardedFigure: LatencyFigure, baseline: LatencyFigure) => ({
      ...guardedFigure,
      unguardedP50Ms: baseline.p50Ms,
      overheadP50Ms: round(guardedFigure.p50Ms - baseline.p50Ms),
    });
    return {
      "tool.unguarded": { ...unguarded },
      "tool.guarded.mcp": versus(viaMcp, unguarded),
      "tool.guarded.langchain": versus(langchainGuarded, langchainUnguarded),
      "tool.guarded.ai": versus(aiGuarded, aiUnguarded),
    };
  } finally {
    await raw.close();
    await gated.close();
  }
}

/** An in-memory MCP server with one tool that does no work, and a client connected to it. */
async function connectBenchServer(): Promise<{ client: Client; close: () => Promise<void> }> {
  const server = new McpServer({ name: "bench", version: "0.0.0" });
  server.registerTool("read_file", { inputSchema: { path: z.string() } }, async ({ path }) => ({
    content: [{ type: "text", text: path }],
  }));
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "bench", version: "0.0.0" });
  await client.connect(clientTransport);
  return {
    client,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
