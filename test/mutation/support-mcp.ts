import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  type JSONRPCMessage,
  ListToolsRequestSchema,
  type ListToolsResult,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { expect } from "vitest";

export const tool = (name: string, annotations?: Tool["annotations"]): Tool => ({
  name,
  inputSchema: { type: "object" },
  ...(annotations === undefined ? {} : { annotations }),
});
export const filesystemTools = [
  tool("read_file", { readOnlyHint: true }),
  tool("write_file", { destructiveHint: true }),
  tool("move_file"),
];
export const rawCall = (params: unknown, id = 9001) =>
  ({ jsonrpc: "2.0", id, method: "tools/call", params }) as JSONRPCMessage;

/** A low-level MCP server recording every tools/call it receives; its listing and its tools can be scripted. */
export interface TestServer {
  client: Client;
  /** The client's transport, as code that connected the client would still hold it. */
  transport: Transport;
  mcp: Server;
  /** The params of each tools/call as they arrived on the wire, `_meta` included. */
  wire: Record<string, unknown>[];
  /** The names of the tools the server ran. */
  executed: string[];
  listings: () => number;
  setTools(tools: Tool[]): Promise<void>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  connect?: boolean;
  /** Answers tools/list instead of the plain list. */
  list?: (cursor: string | undefined, server: Server, tools: Tool[]) => Promise<ListToolsResult> | ListToolsResult;
  /** Runs before a tool call is answered (to hold a call in flight). */
  beforeRun?: (params: Record<string, unknown>) => Promise<void> | void;
}

const servers: TestServer[] = [];

/** Closes every server the test started. */
export async function closeServers(): Promise<void> {
  await Promise.all(servers.splice(0).map((server) => server.close()));
}

export async function startServer(name: string, initial: Tool[], options: TestServerOptions = {}) {
  let tools = initial;
  let listings = 0;
  const wire: Record<string, unknown>[] = [];
  const executed: string[] = [];
  const mcp = new Server({ name, version: "0.0.0" }, { capabilities: { tools: { listChanged: true } } });
  mcp.setRequestHandler(ListToolsRequestSchema, (request) => {
    listings++;
    return options.list === undefined ? { tools } : options.list(request.params?.cursor, mcp, tools);
  });
  mcp.setRequestHandler(CallToolRequestSchema, async (request): Promise<CallToolResult> => {
    await options.beforeRun?.(request.params);
    executed.push(request.params.name);
    return { content: [{ type: "text", text: `ran ${request.params.name}` }] };
  });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await mcp.connect(serverTransport);
  const deliver = serverTransport.onmessage;
  serverTransport.onmessage = (message, extra) => {
    if ("method" in message && message.method === "tools/call") wire.push(JSON.parse(JSON.stringify(message.params)));
    deliver?.(message, extra);
  };
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  if (options.connect !== false) await client.connect(clientTransport);
  const server: TestServer = {
    client,
    transport: clientTransport,
    mcp,
    wire,
    executed,
    listings: () => listings,
    async setTools(next) {
      tools = next;
      await mcp.sendToolListChanged();
    },
    close: async () => {
      await client.close();
      await mcp.close();
    },
  };
  servers.push(server);
  return server;
}

/** The text of a refusal result; fails the test when the result is not an error. */
export function refusalText(result: unknown): string {
  const { isError, content } = result as CallToolResult;
  expect(isError).toBe(true);
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
}

/**
 * Patches `client.request` as code that wraps the client would: it sees (a copy of) each tools/call's params and,
 * with `lose`, fails the request without sending it.
 */
export function interceptCalls(
  client: Client,
  mode: { lose?: boolean; rewrite?: (params: Record<string, unknown>) => unknown } = {},
) {
  const seen: Record<string, unknown>[] = [];
  const request = client.request.bind(client);
  client.request = ((message: { method: string; params?: Record<string, unknown> }, schema, options) => {
    if (message.method !== "tools/call") return request(message as never, schema, options);
    seen.push(structuredClone(message.params as Record<string, unknown>));
    if (mode.lose === true) return Promise.reject(new Error("lost before sending"));
    const params =
      mode.rewrite === undefined ? message.params : mode.rewrite(message.params as Record<string, unknown>);
    return request({ ...message, params } as never, schema, options);
  }) as Client["request"];
  return seen;
}

export async function collect(stream: AsyncIterable<unknown>) {
  const messages: { type?: string; result?: unknown; error?: unknown }[] = [];
  for await (const message of stream) messages.push(message as (typeof messages)[number]);
  return messages;
}

/**
 * A client transport that can be started again after it was closed (as a reconnecting HTTP transport can): each
 * start opens a fresh in-memory link to a fresh server made by `serve`.
 */
export class RestartableTransport implements Transport {
  onmessage?: Transport["onmessage"];
  onclose?: Transport["onclose"];
  onerror?: Transport["onerror"];
  readonly #serve: (serverSide: Transport) => Promise<void>;
  #link: InMemoryTransport | undefined;

  constructor(serve: (serverSide: Transport) => Promise<void>) {
    this.#serve = serve;
  }

  async start(): Promise<void> {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await this.#serve(serverSide);
    clientSide.onmessage = (message, extra) => this.onmessage?.(message, extra);
    clientSide.onclose = () => this.onclose?.();
    this.#link = clientSide;
    await clientSide.start();
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.#link === undefined) return Promise.reject(new Error("Not connected"));
    return this.#link.send(message);
  }

  async close(): Promise<void> {
    const link = this.#link;
    this.#link = undefined;
    await link?.close();
  }
}
