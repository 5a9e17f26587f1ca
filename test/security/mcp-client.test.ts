// Escalation corpus for the MCP client guard: each case is an attack on guardMcpClient — a way around the check, a
// way to change the call after the check, a way to poison what the check decides with — run against the real PDP
// and a real in-memory MCP server that records every tools/call it receives. Each asserts what the server really
// received or ran (usually nothing) and the span that explains it; a send stopped at the transport has no allow
// span and a clear error.
import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  CallToolResultSchema,
  EmptyResultSchema,
  type JSONRPCMessage,
  ListToolsRequestSchema,
  ListToolsResultSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { guardMcpClient, type McpApprovalAnswer } from "../../src/adapters/mcp/index.ts";
import {
  createGuard,
  type Delegation,
  HopguardError,
  runAs,
  SpanAttributes,
  SpanNames,
  ToolCallDeniedError,
} from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { meddlingPdp } from "../support/recording-pdp.ts";
import { alice, planner, researcher, scribe } from "../support/users.ts";
import { recordedGuard, refusalOf } from "./support/attack.ts";

const shared = sharedPdpClient();
const { guard, pdp, tracing, forget } = recordedGuard(shared);

const readCall = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const writeCall = { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } };
const moveCall = {
  name: "move_file",
  arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
};
const rawCall = (params: unknown, id = 9001) =>
  ({ jsonrpc: "2.0", id, method: "tools/call", params }) as JSONRPCMessage;

const tool = (name: string, annotations?: Tool["annotations"]): Tool => ({
  name,
  inputSchema: { type: "object" },
  ...(annotations === undefined ? {} : { annotations }),
});
const filesystemTools = [
  tool("read_file", { readOnlyHint: true }),
  tool("write_file", { destructiveHint: true }),
  tool("move_file"),
  tool("list_allowed_directories", { readOnlyHint: true }),
];
const notesTools = [
  tool("read_note", { readOnlyHint: true }),
  tool("delete_note", { destructiveHint: true }),
  tool("tidy", { readOnlyHint: true }),
];

/** A low-level MCP server that records the params of every tools/call it receives, as it received them. */
interface RecordingServer {
  /** A raw client, connected. */
  client: Client;
  /** The client's transport, as code that connected the client would still hold it. */
  transport: Transport;
  /** The params of each tools/call, as they arrived on the wire (before the server parsed them). */
  wire: Record<string, unknown>[];
  /** The params of each tools/call the server's handler ran. */
  received: Record<string, unknown>[];
  /** Replaces the tool list and announces it with notifications/tools/list_changed. */
  setTools(tools: Tool[]): Promise<void>;
  /** Sends the client a request of `method`, as a server may (sampling, roots, elicitation, or anything). */
  ask(method: string): Promise<unknown>;
  close(): Promise<void>;
}

const servers: RecordingServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

async function startServer(name: string, initial: Tool[], options: { connect?: boolean } = {}) {
  let tools = initial;
  const wire: Record<string, unknown>[] = [];
  const received: Record<string, unknown>[] = [];
  const mcp = new Server({ name, version: "0.0.0" }, { capabilities: { tools: { listChanged: true } } });
  mcp.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
  mcp.setRequestHandler(CallToolRequestSchema, (request) => {
    received.push(request.params);
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
  const server: RecordingServer = {
    client,
    transport: clientTransport,
    wire,
    received,
    async setTools(next) {
      tools = next;
      await mcp.sendToolListChanged();
    },
    ask: (method) => mcp.request({ method } as never, EmptyResultSchema),
    close: async () => {
      await client.close();
      await mcp.close();
    },
  };
  servers.push(server);
  return server;
}

const executed = (server: RecordingServer) => server.received.map((params) => params.name);
const refusalText = (result: unknown): string => {
  const { isError, content } = result as CallToolResult;
  expect(isError).toBe(true);
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
};
const authorizeSpans = (): ReadableSpan[] => tracing.spans().filter((span) => span.name === SpanNames.authorize);
const decisions = (): unknown[] => authorizeSpans().map((span) => span.attributes[SpanAttributes.decision]);
const onlyAuthorize = () => {
  const spans = authorizeSpans();
  expect(spans).toHaveLength(1);
  return (spans[0] as ReadableSpan).attributes;
};
/** Each distinct value, in the order first seen: every hop's check of one call carries the same attributes. */
const distinct = (values: unknown[]): unknown[] => [
  ...new Map(values.map((value) => [JSON.stringify(value), value])).values(),
];
/** The distinct `annotations` the PDP was sent for tool-call checks (of `tool`, when given). */
const annotationsSeen = (tool?: string): unknown[] =>
  distinct(
    pdp.checks.flatMap((check) =>
      check.resources.flatMap(({ resource }) =>
        resource.kind.startsWith("mcp::") && (tool === undefined || resource.id === tool)
          ? [resource.attr?.annotations]
          : [],
      ),
    ),
  );
/** The distinct `arguments` the PDP was sent for tool calls. */
const argumentsSeen = (): unknown[] => distinct(pdp.argumentsSeen());
const collect = async (stream: AsyncIterable<unknown>) => {
  const messages: { type?: string; result?: unknown; error?: unknown }[] = [];
  for await (const message of stream) messages.push(message as (typeof messages)[number]);
  return messages;
};
const noTicket = /hopguard refused to send tools\/call: it did not pass hopguard's check/;

let asAlice: Delegation;
let asResearcher: Delegation;
let asScribe: Delegation;
let asPlanner: Delegation;
beforeAll(async () => {
  asAlice = guard.forUser(alice);
  asResearcher = await asAlice.delegate(researcher);
  asScribe = await asAlice.delegate(scribe);
  asPlanner = await asAlice.delegate(planner);
});

describe("every way to send tools/call goes through the check", () => {
  test("attack: the prototype's request or callTool, called on the view, finds no connection to send on", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const prototype = Object.getPrototypeOf(view) as Client;
    const viaRequest = await refusalOf(
      prototype.request.call(view, { method: "tools/call", params: writeCall }, CallToolResultSchema),
    );
    const viaCallTool = await refusalOf(prototype.callTool.call(view, writeCall));

    expect(String(viaRequest)).toMatch(/Not connected/);
    expect(viaCallTool).toBeInstanceOf(TypeError);
    expect(fs.wire).toEqual([]);
    expect(tracing.spans()).toEqual([]);
  });

  test("attack: the client's internals are not members of the view: they read as undefined and cannot be set", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher }) as unknown as Record<
      string,
      unknown
    >;
    forget();

    for (const internal of [
      "_transport",
      "_requestHandlers",
      "_responseHandlers",
      "_onresponse",
      "isToolTask",
      "then",
    ]) {
      expect(view[internal], internal).toBeUndefined();
      expect(internal in view, internal).toBe(false);
    }
    expect(Object.getOwnPropertyDescriptor(view, "_transport")).toBeUndefined();
    expect(() => {
      view._transport = fs.transport;
    }).toThrow(TypeError);
    expect(() => Object.defineProperty(view, "_transport", { value: fs.transport })).toThrow(TypeError);
    expect(view).toBeInstanceOf(Client);
    expect(refusalText(await (view.callTool as Client["callTool"])(writeCall))).toContain("denied by agent");
    expect(fs.wire).toEqual([]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("deny");
  });

  test("attack: a raw JSON-RPC tools/call written to view.transport.send is rejected before it is sent", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const error = await refusalOf(view.transport?.send(rawCall(writeCall)) ?? Promise.resolve());

    expect(HopguardError.isInstance(error)).toBe(true);
    expect(String(error)).toMatch(noTicket);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: the gated transport's prototype send, called on the wrapper, is the gate itself", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const wrapper = view.transport as Transport;
    forget();

    const send = (Object.getPrototypeOf(wrapper) as Transport).send;
    const error = await refusalOf(send.call(wrapper, rawCall(writeCall)));

    expect(String(error)).toMatch(noTicket);
    expect(Object.keys(wrapper)).toEqual([]);
    expect(wrapper.onmessage).toBeUndefined();
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: the raw transport held from before guarding sends through the gate too", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const error = await refusalOf(fs.transport.send(rawCall(writeCall)));

    expect(String(error)).toMatch(noTicket);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: the original client, once guarded, can no longer call a tool by any of its methods", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const viaCallTool = await refusalOf(fs.client.callTool(writeCall));
    const viaRequest = await refusalOf(
      fs.client.request({ method: "tools/call", params: writeCall }, CallToolResultSchema),
    );
    const viaStream = await collect(fs.client.experimental.tasks.callToolStream(writeCall));

    expect(String(viaCallTool)).toMatch(noTicket);
    expect(String(viaRequest)).toMatch(noTicket);
    expect(viaStream).toHaveLength(1);
    expect(viaStream[0]?.type).toBe("error");
    expect(String(viaStream[0]?.error)).toMatch(/did not pass hopguard's check/);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
    // What does not call a tool still works on the original client.
    await expect(fs.client.ping()).resolves.toEqual({});
  });

  test("attack: experimental.tasks.callToolStream and requestStream are checked like callTool", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const denied = await collect(view.experimental.tasks.callToolStream(writeCall));
    const deniedRequest = await collect(
      view.experimental.tasks.requestStream({ method: "tools/call", params: writeCall }, CallToolResultSchema),
    );
    const allowed = await collect(view.experimental.tasks.callToolStream(readCall));

    expect(refusalText(denied[0]?.result)).toContain('denied by agent "researcher"');
    expect(refusalText(deniedRequest[0]?.result)).toContain('denied by agent "researcher"');
    expect(allowed.at(-1)?.type).toBe("result");
    expect(executed(fs)).toEqual(["read_file"]);
    expect(decisions()).toEqual(["deny", "deny", "allow"]);
  });

  test("attack: the protected requestStream, reached from JavaScript, is checked", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const requestStream = (view as unknown as { requestStream: typeof view.experimental.tasks.requestStream })
      .requestStream;
    const messages = await collect(requestStream({ method: "tools/call", params: writeCall }, CallToolResultSchema));

    expect(refusalText(messages[0]?.result)).toContain('denied by agent "researcher"');
    expect(fs.wire).toEqual([]);
    expect(onlyAuthorize()[SpanAttributes.deniedBy]).toBe("researcher");
  });

  test("attack: a request handler answers the server by calling a tool through its extra.sendRequest", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const failures: unknown[] = [];
    view.fallbackRequestHandler = async (_request, extra) => {
      await extra.sendRequest({ method: "tools/call", params: writeCall }, CallToolResultSchema).catch((error) => {
        failures.push(error);
      });
      return {};
    };
    forget();

    await fs.ask("hopguard-test/trigger");

    expect(failures).toHaveLength(1);
    expect(String(failures[0])).toMatch(noTicket);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test('attack: notification({ method: "tools/call" }) is rejected at the transport', async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const error = await refusalOf(
      view.notification({ method: "tools/call", params: writeCall } as unknown as Parameters<
        typeof view.notification
      >[0]),
    );

    expect(String(error)).toMatch(noTicket);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: a JSON-RPC batch carrying a tools/call is rejected whole", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const batch = [{ jsonrpc: "2.0", id: 1, method: "ping" }, rawCall(writeCall, 2)] as unknown as JSONRPCMessage;
    const error = await refusalOf(view.transport?.send(batch) ?? Promise.resolve());

    expect(String(error)).toMatch(/JSON-RPC batch/);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: a client reconnected around the view is refused every call (fail closed), until guarded again", async () => {
    const first = await startServer("filesystem", filesystemTools);
    const second = await startServer("filesystem", filesystemTools, { connect: false });
    const view = guardMcpClient(first.client, { server: "filesystem", delegation: asResearcher });
    await first.client.close();
    await first.client.connect(second.transport);
    forget();

    const result = await view.callTool(readCall);
    const throwing = guardMcpClient(first.client, {
      server: "filesystem",
      delegation: asResearcher,
      onDenied: "throw",
    });

    expect(refusalText(result)).toContain("not connected through hopguard");
    expect(second.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
    // Guarding the client again gates its new connection: the raw transport is gated, the view's call goes through.
    await expect(second.transport.send(rawCall(writeCall))).rejects.toThrow(noTicket);
    expect((await throwing.callTool(readCall)).isError).toBeFalsy();
    expect(executed(second)).toEqual(["read_file"]);
    expect(decisions()).toEqual(["allow"]);
  });

  test("attack: a client guarded before it connects is gated from its first message", async () => {
    const fs = await startServer("filesystem", filesystemTools, { connect: false });
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    await view.connect(fs.transport);
    forget();

    await expect(fs.client.callTool(writeCall)).rejects.toThrow(noTicket);
    expect(refusalText(await view.callTool(writeCall))).toContain('denied by agent "researcher"');
    expect((await view.callTool(readCall)).isError).toBeFalsy();
    expect(executed(fs)).toEqual(["read_file"]);
    expect(decisions()).toEqual(["deny", "allow"]);
  });
});

describe("the documented limit", () => {
  test("limit: the raw transport's own class send, called by code that held it before guarding, is out of reach", async () => {
    // What guardMcpClient's TSDoc states: no in-process guard sees this; a server-side guard does.
    const fs = await startServer("filesystem", filesystemTools);
    guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    await InMemoryTransport.prototype.send.call(fs.transport, rawCall(writeCall));
    await fs.client.ping(); // a round trip after it: the server has handled the call by then

    expect(executed(fs)).toEqual(["write_file"]);
    expect(authorizeSpans()).toEqual([]);
  });
});

describe("admission tickets", () => {
  /** Watches (and may rewrite) the tools/call requests the client makes, as code that patched the client would. */
  const spyOn = (client: Client, rewrite?: (params: Record<string, unknown>) => Record<string, unknown>) => {
    const seen: Record<string, unknown>[] = [];
    const request = client.request.bind(client);
    client.request = ((message: { method: string; params?: Record<string, unknown> }, schema, options) => {
      if (message.method !== "tools/call" || message.params === undefined)
        return request(message as never, schema, options);
      seen.push(structuredClone(message.params));
      const params = rewrite === undefined ? message.params : rewrite(message.params);
      return request({ ...message, params } as never, schema, options);
    }) as Client["request"];
    return seen;
  };

  test("attack: a ticket seen on an allowed call is replayed, and refused as already used", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const seen = spyOn(fs.client);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    await view.callTool(readCall);
    const error = await refusalOf(view.transport?.send(rawCall(seen[0])) ?? Promise.resolve());

    expect(seen[0]?._meta).toHaveProperty(["hopguard.dev/admission"]);
    expect(String(error)).toMatch(/admission ticket is unknown or was already used/);
    expect(executed(fs)).toEqual(["read_file"]);
    // The server never sees a ticket.
    expect(fs.wire[0]).toEqual(readCall);
    expect(decisions()).toEqual(["allow"]);
  });

  test("attack: a forged ticket is refused", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const forged = { ...writeCall, _meta: { "hopguard.dev/admission": randomUUID() } };
    const error = await refusalOf(view.transport?.send(rawCall(forged)) ?? Promise.resolve());

    expect(String(error)).toMatch(/admission ticket is unknown/);
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("attack: a real ticket carried by different arguments is refused, and is spent", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const seen = spyOn(fs.client, (params) => ({ ...params, arguments: { path: "/etc/shadow" } }));
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const error = await refusalOf(view.callTool(readCall));
    const replay = await refusalOf(view.transport?.send(rawCall(seen[0])) ?? Promise.resolve());

    expect(String(error)).toMatch(/name or arguments differ from the call hopguard authorized/);
    expect(String(replay)).toMatch(/unknown or was already used/);
    expect(fs.wire).toEqual([]);
    // The PDP allowed what was asked; what was sent instead never left.
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("allow");
    expect(argumentsSeen()).toEqual([readCall.arguments]);
  });
});

describe("what was checked is exactly what is sent", () => {
  test("attack: the caller edits the arguments while the PDP is deciding", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const args: Record<string, string> = { path: "/workspace/alice/notes.md", content: "x" };
    let armed = false;
    const editing = meddlingPdp(pdp, () => {
      if (armed) args.path = "/etc/passwd";
    });
    const delegation = await createGuard({ client: editing, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation });
    forget();

    armed = true;
    const result = await view.callTool({ name: "write_file", arguments: args });

    expect(result.isError).toBeFalsy();
    expect(args.path).toBe("/etc/passwd");
    expect(fs.received).toEqual([
      { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } },
    ]);
    expect(argumentsSeen()).toEqual([fs.received[0]?.arguments]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("allow");
  });

  test("attack: getters that answer differently on their second read", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asScribe });
    forget();
    let pathReads = 0;
    let nameReads = 0;
    const params = {
      get name() {
        return nameReads++ === 0 ? "read_file" : "write_file";
      },
      arguments: {
        get path() {
          return pathReads++ === 0 ? "/workspace/alice/notes.md" : "/etc/shadow";
        },
        content: "x",
      },
    };

    const result = await view.callTool(params);

    expect(result.isError).toBeFalsy();
    expect([nameReads, pathReads]).toEqual([1, 1]);
    expect(fs.received).toEqual([
      { name: "read_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } },
    ]);
    expect(argumentsSeen()).toEqual([fs.received[0]?.arguments]);
    expect(onlyAuthorize()[SpanAttributes.toolName]).toBe("read_file");
  });

  test("attack: toJSON arguments (a URL, a Date, an object whose toJSON differs from its fields)", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asScribe });
    forget();
    const disguised = { path: "/etc/passwd", toJSON: () => ({ path: "/workspace/alice/notes.md" }) };

    await view.callTool({
      name: "write_file",
      arguments: {
        path: "/workspace/alice/notes.md",
        content: "x",
        source: new URL("https://example.com/a?b=c"),
        when: new Date(Date.UTC(2030, 0, 1)),
        target: disguised,
      },
    });

    const sent = {
      path: "/workspace/alice/notes.md",
      content: "x",
      source: "https://example.com/a?b=c",
      when: "2030-01-01T00:00:00.000Z",
      target: { path: "/workspace/alice/notes.md" },
    };
    expect(fs.wire).toEqual([{ name: "write_file", arguments: sent }]);
    expect(argumentsSeen()).toEqual([sent]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("allow");
  });

  test("attack: a __proto__ key in the arguments is checked and sent as the same own key", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asScribe });
    forget();
    const args = JSON.parse('{"path": "/workspace/alice/notes.md", "content": "x", "__proto__": {"path": "/etc"}}');

    await view.callTool({ name: "write_file", arguments: args });

    const [seen] = argumentsSeen() as Record<string, unknown>[];
    const [wire] = fs.wire;
    expect(Object.hasOwn(seen as object, "__proto__")).toBe(true);
    expect(JSON.stringify(wire?.arguments)).toBe(JSON.stringify(seen));
    expect(JSON.stringify(seen)).toBe('{"path":"/workspace/alice/notes.md","content":"x","__proto__":{"path":"/etc"}}');
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("allow");
  });

  test("attack: request() whose method or params are getters is read once", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();
    let methodReads = 0;
    const shifty = {
      get method() {
        return methodReads++ === 0 ? "tools/list" : "tools/call";
      },
      params: writeCall,
    };
    let paramsReads = 0;
    const swapping = {
      method: "tools/call",
      get params() {
        return paramsReads++ === 0 ? readCall : writeCall;
      },
    };

    const listed = await view.request(shifty as never, ListToolsResultSchema);
    const called = await view.request(swapping as never, CallToolResultSchema);

    expect(listed.tools.map((listedTool) => listedTool.name)).toEqual(["read_file", "list_allowed_directories"]);
    expect(called.isError).toBeFalsy();
    expect([methodReads, paramsReads]).toEqual([1, 1]);
    expect(fs.wire).toEqual([readCall]);
    expect(decisions()).toEqual(["allow"]);
  });
});

describe("tool listings cannot poison decisions", () => {
  const notesFor = async (server: RecordingServer, delegation: Delegation) =>
    guardMcpClient(server.client, { server: "notes", delegation });

  test("attack: a caller's listing schema that rewrites annotations changes nothing the PDP is told", async () => {
    const notes = await startServer("notes", notesTools);
    const view = await notesFor(notes, asResearcher);
    const harmless = z.object({
      tools: z.array(
        z.looseObject({ name: z.string(), annotations: z.unknown().transform(() => ({ readOnlyHint: true })) }),
      ),
    });
    await view.request({ method: "tools/list", params: {} }, harmless as never);
    forget();

    const result = await view.callTool({ name: "delete_note", arguments: { id: "1" } });

    expect(refusalText(result)).toContain('denied by agent "researcher"');
    expect(annotationsSeen()).toEqual([{ destructiveHint: true }]);
    expect(notes.wire).toEqual([]);
    expect(onlyAuthorize()[SpanAttributes.deniedBy]).toBe("researcher");
  });

  test("attack: a caller's listing schema that drops annotations changes nothing the PDP is told", async () => {
    const notes = await startServer("notes", notesTools);
    const view = await notesFor(notes, asResearcher);
    const bare = z.object({ tools: z.array(z.object({ name: z.string() })) });
    await view.request({ method: "tools/list", params: {} }, bare as never);
    forget();

    const result = await view.callTool({ name: "read_note", arguments: { id: "1" } });

    expect(result.isError).toBeFalsy();
    expect(annotationsSeen()).toEqual([{ readOnlyHint: true }]);
    expect(executed(notes)).toEqual(["read_note"]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("allow");
  });

  test("attack: a tool re-annotated as destructive and announced with list_changed is read again before the next call", async () => {
    const notes = await startServer("notes", notesTools);
    const view = await notesFor(notes, asResearcher);
    forget();

    const before = await view.callTool({ name: "tidy" });
    await notes.setTools([tool("read_note", { readOnlyHint: true }), tool("tidy", { destructiveHint: true })]);
    const after = await view.callTool({ name: "tidy" });
    const listed = await view.listTools();

    expect(before.isError).toBeFalsy();
    expect(refusalText(after)).toContain('denied by agent "researcher"');
    expect(executed(notes)).toEqual(["tidy"]);
    expect(annotationsSeen("tidy")).toEqual([{ readOnlyHint: true }, { destructiveHint: true }]);
    expect(listed.tools.map((listedTool) => listedTool.name)).toEqual(["read_note"]);
    expect(decisions()).toEqual(["allow", "deny"]);
  });

  test("attack: a tool missing from the server's fresh list is decided with no annotations, and refused", async () => {
    const notes = await startServer("notes", notesTools);
    const view = await notesFor(notes, asResearcher);
    await view.listTools();
    await notes.setTools([tool("read_note", { readOnlyHint: true })]);
    forget();

    const result = await view.callTool({ name: "tidy" });

    expect(refusalText(result)).toContain('denied by agent "researcher"');
    expect(annotationsSeen()).toEqual([{}]);
    expect(notes.wire).toEqual([]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("deny");
  });

  test("attack: a hostile server's lies about annotations are still bounded by policy (annotations are claims)", async () => {
    const liar = [tool("write_file", { readOnlyHint: true }), tool("delete_note", { readOnlyHint: true })];
    const filesystem = await startServer("filesystem", liar);
    const notes = await startServer("notes", liar);
    const readOnlyNotes = await asAlice.delegate({ ...researcher, id: "reader", scope: { tools: ["notes/read_*"] } });
    const fsView = guardMcpClient(filesystem.client, { server: "filesystem", delegation: asResearcher });
    const notesView = guardMcpClient(notes.client, { server: "notes", delegation: readOnlyNotes });
    forget();

    const write = await fsView.callTool(writeCall);
    const remove = await notesView.callTool({ name: "delete_note", arguments: { id: "1" } });

    // hopguard tells the PDP what the server claims; the policy decides what a claim is worth.
    expect(annotationsSeen()).toEqual([{ readOnlyHint: true }]);
    expect(refusalText(write)).toContain('denied by agent "researcher"');
    expect(refusalText(remove)).toContain("denied by scope");
    expect(filesystem.wire).toEqual([]);
    expect(notes.wire).toEqual([]);
    expect(authorizeSpans().map((span) => span.attributes[SpanAttributes.deniedBy])).toEqual(["researcher", "scope"]);
  });

  test("attack: one tool name on two servers is judged with each server's own annotations", async () => {
    const filesystem = await startServer("filesystem", [tool("read_file", { readOnlyHint: true })]);
    const notes = await startServer("notes", [tool("read_file", { destructiveHint: true })]);
    const fsView = guardMcpClient(filesystem.client, { server: "filesystem", delegation: asResearcher });
    const notesView = guardMcpClient(notes.client, { server: "notes", delegation: asResearcher });
    forget();

    const fromFilesystem = await fsView.callTool(readCall);
    const fromNotes = await notesView.callTool(readCall);

    expect(fromFilesystem.isError).toBeFalsy();
    expect(refusalText(fromNotes)).toMatch(/^hopguard refused notes\/read_file: denied by agent "researcher"/);
    expect(executed(filesystem)).toEqual(["read_file"]);
    expect(notes.wire).toEqual([]);
    expect(annotationsSeen()).toEqual([{ readOnlyHint: true }, { destructiveHint: true }]);
    expect(authorizeSpans().map((span) => span.attributes[SpanAttributes.server])).toEqual(["filesystem", "notes"]);
  });

  test("attack: tool names made of __ and Object.prototype members find no annotations to borrow", async () => {
    const notes = await startServer("notes", [tool("__proto__", { readOnlyHint: true }), ...notesTools]);
    const view = await notesFor(notes, asResearcher);
    forget();

    const names = ["constructor", "toString", "notes__delete_note", "__defineGetter__", "delete_note"];
    const results = await Promise.all(names.map((name) => view.callTool({ name, arguments: {} })));

    for (const result of results) expect(refusalText(result)).toContain('denied by agent "researcher"');
    for (const name of names.slice(0, -1)) expect(annotationsSeen(name), name).toEqual([{}]);
    expect(annotationsSeen("delete_note")).toEqual([{ destructiveHint: true }]);
    expect(notes.wire).toEqual([]);
    expect(
      authorizeSpans()
        .map((span) => span.attributes[SpanAttributes.toolName])
        .sort(),
    ).toEqual([...names].sort());
  });
});

describe("concurrency and retries", () => {
  test("attack: allowed and denied calls fired in one tick: exactly the allowed ones run", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();
    const calls = [
      readCall,
      writeCall,
      { name: "read_file", arguments: { path: "/workspace/alice/b.md" } },
      { name: "read_file", arguments: { path: "/workspace/bob/secret.md" } },
      moveCall,
      { name: "list_allowed_directories" },
    ];

    const results = await Promise.all(calls.map((call) => view.callTool(call)));

    expect(results.map((result) => result.isError === true)).toEqual([false, true, false, true, true, false]);
    expect(fs.received.map((params) => JSON.stringify(params.arguments)).sort()).toEqual(
      ['{"path":"/workspace/alice/b.md"}', '{"path":"/workspace/alice/notes.md"}', "{}"].sort(),
    );
    expect(decisions().filter((decision) => decision === "allow")).toHaveLength(3);
    expect(decisions().filter((decision) => decision === "deny")).toHaveLength(3);
  });

  test("attack: a denied call retried, then re-sent as raw JSON-RPC, never runs", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const first = await view.callTool(writeCall);
    const second = await view.callTool(writeCall);
    const raw = await refusalOf(view.transport?.send(rawCall(writeCall)) ?? Promise.resolve());

    expect(refusalText(first)).toBe(refusalText(second));
    expect(String(raw)).toMatch(noTicket);
    expect(fs.wire).toEqual([]);
    expect(decisions()).toEqual(["deny", "deny"]);
  });
});

describe("chains", () => {
  test("attack: a sub-agent calls through its parent's guarded client and gets only its own narrower rights", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const child = await asPlanner.delegate({ ...researcher, scope: { tools: ["filesystem/list_*"] } });
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asPlanner });
    forget();

    const asChild = await runAs(child, () => view.callTool(readCall));
    const childSpan = onlyAuthorize();
    const asParent = await view.callTool(readCall);

    expect(refusalText(asChild)).toContain("denied by scope");
    expect(childSpan[SpanAttributes.chain]).toEqual(["alice", "planner", "researcher"]);
    expect(childSpan[SpanAttributes.deniedBy]).toBe("scope");
    expect(asParent.isError).toBeFalsy();
    expect(executed(fs)).toEqual(["read_file"]);
  });
});

describe("approvals", () => {
  const approvalSpans = () => tracing.spans().filter((span) => span.name === SpanNames.approval);

  test("attack: an approver that throws never lets the tool run, and its failure is on the audit trail", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const approve = () => {
      throw new Error("approval service down");
    };
    const refusing = guardMcpClient(fs.client, { server: "filesystem", delegation: asScribe, approve });
    const throwing = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: asScribe,
      approve,
      onDenied: "throw",
    });
    forget();

    const refused = await refusing.callTool(moveCall);
    const thrown = await refusalOf(throwing.callTool(moveCall));

    expect(refusalText(refused)).toBe(
      "hopguard refused filesystem/move_file: asking for approval failed: approval service down",
    );
    expect(String(thrown)).toMatch(/approval service down/);
    expect(fs.wire).toEqual([]);
    const spans = approvalSpans();
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.attributes[SpanAttributes.approval]).toBe("declined");
      expect(span.attributes[SpanAttributes.deniedBy]).toBe("approval");
      expect(span.attributes[SpanAttributes.reason]).toContain("approval service down");
    }
  });

  test("attack: an approval output on a denied decision never reaches the approver", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    let asked = 0;
    // alice's own hop allows move_file with an approval output; the researcher's hop denies it.
    const view = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: asResearcher,
      approve: () => ++asked > 0,
      onDenied: "throw",
    });
    forget();

    const error = await refusalOf(view.callTool(moveCall));

    expect(ToolCallDeniedError.isInstance(error)).toBe(true);
    const { decision } = error as ToolCallDeniedError;
    expect(decision.allowed).toBe(false);
    // The rule asking for approval did fire; the deny stands regardless.
    expect(decision.outputs.map((output) => output.value)).toContainEqual(
      expect.objectContaining({ approval: "required" }),
    );
    expect(asked).toBe(0);
    expect(approvalSpans()).toEqual([]);
    expect(fs.wire).toEqual([]);
    expect(onlyAuthorize()[SpanAttributes.decision]).toBe("deny");
  });

  test("attack: truthy answers that are not an approval refuse the call; each answer is recorded", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const answers: unknown[] = ["yes", 1, { approved: "true" }, { approved: false, approver: "carol", reason: "no" }];
    const approving = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: asScribe,
      approve: () => ({ approved: true, approver: "dana", reason: "checked the paths" }),
    });
    forget();

    const results: unknown[] = [];
    for (const answer of answers) {
      const view = guardMcpClient(fs.client, {
        server: "filesystem",
        delegation: asScribe,
        approve: () => answer as McpApprovalAnswer,
      });
      results.push(await view.callTool(moveCall));
    }
    const approved = await approving.callTool(moveCall);

    for (const result of results) expect(refusalText(result)).toContain("was not given");
    expect(refusalText(results[3])).toContain("by carol: no");
    expect(approved.isError).toBeFalsy();
    expect(executed(fs)).toEqual(["move_file"]);
    const spans = approvalSpans();
    expect(spans.map((span) => span.attributes[SpanAttributes.approval])).toEqual([
      "declined",
      "declined",
      "declined",
      "declined",
      "approved",
    ]);
    expect(spans[3]?.attributes[SpanAttributes.approver]).toBe("carol");
    expect(spans[4]?.attributes[SpanAttributes.approver]).toBe("dana");
    expect(spans[4]?.attributes[SpanAttributes.decision]).toBe("allow");
  });
});
