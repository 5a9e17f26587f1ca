// Mutation-driven cases for the MCP client guard (src/adapters/mcp): each pins behaviour a surviving mutant changed,
// against the real PDP and a real in-memory MCP server that records what it received and ran.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  CallToolRequestSchema,
  CallToolResultSchema,
  EmptyResultSchema,
  type JSONRPCMessage,
  ListToolsRequestSchema,
  ListToolsResultSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { guardMcpClient, type McpApprovalAnswer } from "../../src/adapters/mcp/index.ts";
import {
  createGuard,
  type Delegation,
  HopguardError,
  InvalidInputError,
  NoDelegationError,
  type PdpClient,
  SpanAttributes,
  SpanNames,
  ToolCallDeniedError,
} from "../../src/index.ts";
import { recordedGuard, refusalOf } from "../security/support/attack.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { memoryTracing, onlySpan } from "../support/tracing.ts";
import { alice, researcher, scribe } from "../support/users.ts";
import {
  closeServers,
  collect,
  filesystemTools,
  interceptCalls,
  RestartableTransport,
  rawCall,
  refusalText,
  startServer,
  tool,
} from "./support-mcp.ts";

const { guard, pdp, tracing, forget } = recordedGuard(sharedPdpClient());

const readCall = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const writeCall = { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } };
const moveCall = {
  name: "move_file",
  arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
};
const spent = /admission ticket is unknown or was already used/;

const authorizeSpans = (): ReadableSpan[] => tracing.spans().filter((span) => span.name === SpanNames.authorize);
const decisions = (): unknown[] => authorizeSpans().map((span) => span.attributes[SpanAttributes.decision]);
const annotationsSeen = (name: string): unknown[] => [
  ...new Set(
    pdp.checks.flatMap((check) =>
      check.resources.flatMap(({ resource }) =>
        resource.kind.startsWith("mcp::") && resource.id === name ? [JSON.stringify(resource.attr?.annotations)] : [],
      ),
    ),
  ),
];

let asAlice: Delegation;
let asResearcher: Delegation;
let asScribe: Delegation;
beforeAll(async () => {
  asAlice = guard.forUser(alice);
  asResearcher = await asAlice.delegate(researcher);
  asScribe = await asAlice.delegate(scribe);
});
afterEach(closeServers);

describe("(A) an admission is one send of exactly the authorized call", () => {
  test("attack: the ticket of an allowed callTool that failed before sending is forgotten, not replayable", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const seen = interceptCalls(fs.client, { lose: true });
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const lost = await refusalOf(view.callTool(readCall));
    const replay = await refusalOf(view.transport?.send(rawCall(seen[0])) ?? Promise.resolve());

    expect(String(lost)).toMatch(/lost before sending/);
    expect(String(replay)).toMatch(spent);
    expect(fs.wire).toEqual([]);
    expect(decisions()).toEqual(["allow"]);
  });

  test("attack: the ticket of an allowed request() that failed before sending is forgotten, not replayable", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const seen = interceptCalls(fs.client, { lose: true });
    forget();

    await refusalOf(view.request({ method: "tools/call", params: readCall }, CallToolResultSchema));
    const replay = await refusalOf(view.transport?.send(rawCall(seen[0])) ?? Promise.resolve());

    expect(String(replay)).toMatch(spent);
    expect(fs.wire).toEqual([]);
    expect(decisions()).toEqual(["allow"]);
  });

  test("attack: the ticket of an allowed task stream that failed before sending is forgotten, not replayable", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const seen = interceptCalls(fs.client, { lose: true });
    forget();

    const streamed = await collect(view.experimental.tasks.callToolStream(readCall));
    const requested = await collect(
      view.experimental.tasks.requestStream({ method: "tools/call", params: readCall }, CallToolResultSchema),
    );
    const replays = await Promise.all(
      seen.map((params, index) => refusalOf(view.transport?.send(rawCall(params, 100 + index)) ?? Promise.resolve())),
    );

    expect([streamed[0]?.type, requested[0]?.type]).toEqual(["error", "error"]);
    expect(seen).toHaveLength(2);
    for (const replay of replays) expect(String(replay)).toMatch(spent);
    expect(fs.wire).toEqual([]);
    expect(decisions()).toEqual(["allow", "allow"]);
  });

  test("attack: a ticket replayed while its call is still in flight is refused; the server runs the call once", async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let arrived: () => void = () => {};
    const inFlight = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const fs = await startServer("filesystem", filesystemTools, {
      beforeRun: () => {
        arrived();
        return held;
      },
    });
    const seen = interceptCalls(fs.client);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const call = view.callTool(readCall);
    await inFlight;
    const replay = await refusalOf(view.transport?.send(rawCall(seen[0])) ?? Promise.resolve());
    release();
    const result = await call;

    expect(String(replay)).toMatch(spent);
    expect(result.isError).toBeFalsy();
    expect(fs.executed).toEqual(["read_file"]);
    expect(fs.wire).toEqual([readCall]);
    expect(decisions()).toEqual(["allow"]);
  });

  test('attack: a real ticket carried by arguments whose arrays differ is refused ([1, 2] is not [12], nor ["/etc"])', async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const args = { path: "/workspace/alice/notes.md", lines: [1, 2], also: ["/workspace/alice/b.md"] };
    const rewrites = [
      (params: Record<string, unknown>) => ({ ...params, arguments: { ...args, lines: [12] } }),
      (params: Record<string, unknown>) => ({ ...params, arguments: { ...args, also: ["/etc/shadow"] } }),
    ];
    const errors: unknown[] = [];
    const wires: unknown[] = [];
    forget();
    for (const rewrite of rewrites) {
      const rewritten = await startServer("filesystem", filesystemTools);
      interceptCalls(rewritten.client, { rewrite });
      const view = guardMcpClient(rewritten.client, { server: "filesystem", delegation: asResearcher });
      errors.push(await refusalOf(view.callTool({ name: "read_file", arguments: args })));
      wires.push(...rewritten.wire);
    }
    const untouched = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const allowed = await untouched.callTool({ name: "read_file", arguments: args });

    for (const error of errors)
      expect(String(error)).toMatch(/name or arguments differ from the call hopguard authorized/);
    expect(allowed.isError).toBeFalsy();
    expect(wires).toEqual([]);
    expect(fs.wire).toEqual([{ name: "read_file", arguments: args }]);
    expect(decisions()).toEqual(["allow", "allow", "allow"]);
  });

  test("attack: a client reconnected through the view to another server reads that server's annotations", async () => {
    const first = await startServer("notes", [tool("tidy", { readOnlyHint: true })], { connect: false });
    const second = await startServer("notes", [tool("tidy", { destructiveHint: true })], { connect: false });
    const view = guardMcpClient(first.client, { server: "notes", delegation: asResearcher });
    await view.connect(first.transport);
    forget();

    const before = await view.callTool({ name: "tidy" });
    await view.close();
    await view.connect(second.transport);
    const after = await view.callTool({ name: "tidy" });

    expect(before.isError).toBeFalsy();
    expect(refusalText(after)).toContain('denied by agent "researcher"');
    expect(first.executed).toEqual(["tidy"]);
    expect(second.wire).toEqual([]);
    expect(annotationsSeen("tidy")).toEqual(['{"readOnlyHint":true}', '{"destructiveHint":true}']);
    expect(decisions()).toEqual(["allow", "deny"]);
  });
});

describe("(B) the transport gate's refusals and what it forwards", () => {
  test("a tools/call with an empty _meta, or a null one, is refused as carrying no ticket, with code authorization_failed", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const empty = await refusalOf(view.transport?.send(rawCall({ ...writeCall, _meta: {} })) ?? Promise.resolve());
    const nulled = await refusalOf(view.transport?.send(rawCall({ ...writeCall, _meta: null })) ?? Promise.resolve());
    const nullParams = await refusalOf(view.transport?.send(rawCall(null)) ?? Promise.resolve());

    for (const error of [empty, nulled, nullParams]) {
      expect(HopguardError.isInstance(error)).toBe(true);
      expect((error as HopguardError).code).toBe("authorization_failed");
      expect((error as Error).message).toBe(
        "hopguard refused to send tools/call: it did not pass hopguard's check (no admission ticket)",
      );
    }
    expect(fs.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("a batch and a non-object message are refused with code authorization_failed; an unserializable one names the message", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const send = (message: unknown) => refusalOf(view.transport?.send(message as JSONRPCMessage) ?? Promise.resolve());
    forget();

    const batch = await send([rawCall(writeCall)]);
    const text = await send("tools/call");
    const big = await send({ jsonrpc: "2.0", id: 1, method: "ping", params: { n: 1n } });
    const nothing = await send(undefined);

    expect([(batch as HopguardError).code, (text as HopguardError).code]).toEqual([
      "authorization_failed",
      "authorization_failed",
    ]);
    expect((text as Error).message).toBe("hopguard refused a non-object message");
    expect(InvalidInputError.isInstance(big)).toBe(true);
    expect((big as InvalidInputError).path).toBe("message");
    expect((big as Error).message).toMatch(/^message: cannot be sent as JSON \(.*BigInt/);
    expect((nothing as Error).message).toBe("message: cannot be sent as JSON");
    expect(fs.wire).toEqual([]);
  });

  test("the caller's _meta (empty or not) and the SDK's progressToken reach the server; the ticket never does", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    await view.callTool({ ...readCall, _meta: {} });
    await view.callTool({ ...readCall, _meta: { note: "n" } });
    await view.callTool(readCall, CallToolResultSchema, { onprogress: () => {} });
    await view.callTool(readCall);

    expect(fs.wire).toEqual([
      { ...readCall, _meta: {} },
      { ...readCall, _meta: { note: "n" } },
      { ...readCall, _meta: { progressToken: expect.anything() } },
      readCall,
    ]);
    expect(decisions()).toEqual(["allow", "allow", "allow", "allow"]);
  });
});

describe("(B) refusals a model reads", () => {
  test("a call whose params are not an object, or whose name is not a string, is refused as filesystem/? and never sent", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const texts = [];
    for (const params of [null, undefined, { name: 42, arguments: {} }]) {
      texts.push(refusalText(await view.callTool(params as never)));
    }

    for (const text of texts) {
      expect(text).toMatch(/^hopguard refused filesystem\/\?: /);
      expect(text).not.toMatch(/annotations/);
    }
    expect(fs.listings()).toBe(0);
    expect(fs.wire).toEqual([]);
    expect(decisions()).toEqual(["error", "error", "error"]);
  });

  test("a call whose arguments are not an object is refused for its arguments, with its tool named on the span", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const text = refusalText(await view.callTool({ name: "read_file", arguments: "/etc/passwd" as never }));

    expect(text).toMatch(/^hopguard refused filesystem\/read_file: .*arguments/);
    expect(fs.wire).toEqual([]);
    expect(fs.listings()).toBe(0);
  });

  test("a _meta that JSON cannot carry is refused (not thrown), saying why", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const text = refusalText(await view.callTool({ ...readCall, _meta: { n: 1n } } as never));

    expect(text).toMatch(/^hopguard refused filesystem\/read_file: params: cannot be sent as JSON \(.*BigInt/);
    expect(fs.wire).toEqual([]);
  });

  test("a server whose listing fails: the refusal says why, with the server's own message", async () => {
    const broken = await startServer("filesystem", filesystemTools, {
      list: () => {
        throw new Error("tool registry unavailable");
      },
    });
    const view = guardMcpClient(broken.client, { server: "filesystem", delegation: asScribe });
    const chainless = guardMcpClient(broken.client, { server: "filesystem" });
    forget();

    const text = refusalText(await view.callTool(readCall));
    const noChain = refusalText(await chainless.callTool(readCall));

    expect(text).toMatch(
      /^hopguard refused filesystem\/read_file: its annotations could not be read from the server: .*tool registry unavailable$/,
    );
    // Without a chain there is nothing to judge with annotations: the listing is not even asked for.
    expect(noChain).toMatch(/no delegation chain/);
    expect(broken.listings()).toBe(1);
    expect(broken.wire).toEqual([]);
  });

  test("a server whose tool list keeps changing while read, or never stops paging, is refused (bounded), never read forever", async () => {
    const restless = await startServer("notes", [tool("tidy", { readOnlyHint: true })], {
      list: async (_cursor, mcp, tools) => {
        await mcp.sendToolListChanged();
        return { tools };
      },
    });
    const endless = await startServer("notes", [tool("tidy", { readOnlyHint: true })], {
      list: (cursor, _mcp, tools) => ({ tools, nextCursor: String(Number(cursor ?? 0) + 1) }),
    });
    forget();

    const changing = refusalText(
      await guardMcpClient(restless.client, { server: "notes", delegation: asResearcher }).callTool({ name: "tidy" }),
    );
    const paging = refusalText(
      await guardMcpClient(endless.client, { server: "notes", delegation: asResearcher }).callTool({ name: "tidy" }),
    );

    expect(changing).toBe(
      "hopguard refused notes/tidy: its annotations could not be read from the server: " +
        "the server's tool list kept changing while hopguard read it",
    );
    expect(paging).toBe(
      "hopguard refused notes/tidy: its annotations could not be read from the server: " +
        "the server's tool list has more than 1000 pages",
    );
    expect(restless.listings()).toBe(3);
    expect(endless.listings()).toBe(1000);
    expect([...restless.wire, ...endless.wire]).toEqual([]);
  });

  test("a tool list of exactly 1000 pages is read whole", async () => {
    const paged = await startServer("notes", [], {
      list: (cursor) => {
        const page = Number(cursor ?? 1);
        return page === 1000
          ? { tools: [tool("tidy", { readOnlyHint: true })] }
          : { tools: [], nextCursor: String(page + 1) };
      },
    });
    forget();

    const result = await guardMcpClient(paged.client, { server: "notes", delegation: asResearcher }).callTool({
      name: "tidy",
    });

    expect(result.isError).toBeFalsy();
    expect(paged.listings()).toBe(1000);
    expect(paged.executed).toEqual(["tidy"]);
  });

  test("a client reconnected around the view: the throwing view throws authorization_failed naming the call", async () => {
    const first = await startServer("filesystem", filesystemTools);
    const second = await startServer("filesystem", filesystemTools, { connect: false });
    const view = guardMcpClient(first.client, { server: "filesystem", delegation: asResearcher, onDenied: "throw" });
    await first.client.close();
    await first.client.connect(second.transport);
    forget();

    const error = await refusalOf(view.callTool(readCall));

    expect((error as HopguardError).code).toBe("authorization_failed");
    expect((error as Error).message).toBe(
      "hopguard refused filesystem/read_file: the client is not connected through hopguard " +
        "(connect it through the guarded view, or guard it again once connected)",
    );
    expect(second.wire).toEqual([]);
    expect(authorizeSpans()).toEqual([]);
  });

  test("a chainless call's span goes to the tracer passed to guardMcpClient; a chainless listing names the server", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const local = memoryTracing();
    const view = guardMcpClient(fs.client, { server: "filesystem", tracer: local.tracer, onDenied: "throw" });
    forget();

    const error = await refusalOf(view.callTool(readCall));
    const listing = await refusalOf(view.listTools());

    expect(NoDelegationError.isInstance(error)).toBe(true);
    expect(onlySpan(local.spans(), SpanNames.authorize).attributes[SpanAttributes.decision]).toBe("error");
    expect((listing as Error).message).toMatch(/^listing the tools of MCP server "filesystem" has no delegation chain/);
    expect(fs.wire).toEqual([]);
  });
});

describe("(B) approvals: the refusal text and what is thrown", () => {
  const ask = async (answer: unknown, onDenied?: "throw") => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: asScribe,
      approve: () => answer as McpApprovalAnswer,
      ...(onDenied === undefined ? {} : { onDenied }),
    });
    const outcome = onDenied === undefined ? await view.callTool(moveCall) : await refusalOf(view.callTool(moveCall));
    expect(fs.wire).toEqual([]);
    return outcome;
  };
  const notGiven =
    "hopguard refused filesystem/move_file: a human's approval is required (moving files changes what others rely on) and was not given";

  test("a no without approver or reason, with an empty reason, or with non-string ones, adds nothing to the refusal", async () => {
    forget();
    const texts = [];
    for (const answer of [false, { approved: false, reason: "" }, { approved: false, approver: 42, reason: 7 }]) {
      texts.push(refusalText(await ask(answer)));
    }

    expect(texts).toEqual([notGiven, notGiven, notGiven]);
    const approvals = tracing.spans().filter((span) => span.name === SpanNames.approval);
    expect(approvals.map((span) => span.attributes[SpanAttributes.approval])).toEqual([
      "declined",
      "declined",
      "declined",
    ]);
  });

  test("a no names who said it and why", async () => {
    expect(refusalText(await ask({ approved: false, approver: "carol" }))).toBe(`${notGiven} by carol`);
    expect(refusalText(await ask({ approved: false, reason: "not today" }))).toBe(`${notGiven}: not today`);
  });

  test("an approver answering null or undefined has declined (not failed): ToolCallDeniedError by approval", async () => {
    for (const answer of [null, undefined]) {
      expect(refusalText(await ask(answer))).toBe(notGiven);
      const error = await ask(answer, "throw");
      expect(ToolCallDeniedError.isInstance(error)).toBe(true);
      expect((error as ToolCallDeniedError).decision.deniedBy).toBe("approval");
    }
  });

  test("an approver that throws, on a throwing view: its own error is thrown", async () => {
    const failure = new Error("approval service down");
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: asScribe,
      onDenied: "throw",
      approve: () => {
        throw failure;
      },
    });

    expect(await refusalOf(view.callTool(moveCall))).toBe(failure);
    expect(fs.wire).toEqual([]);
  });
});

describe("(B) connecting, reconnecting and guarding again", () => {
  test("connecting a connected view again is refused as the SDK would, and the live connection stays gated and usable", async () => {
    const fs = await startServer("filesystem", filesystemTools, { connect: false });
    const spare = await startServer("filesystem", filesystemTools, { connect: false });
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    await view.connect(fs.transport);
    forget();

    const error = await refusalOf(view.connect(spare.transport));
    const result = await view.callTool(readCall);

    expect((error as Error).message).toMatch(/^Already connected to a transport\. Call close\(\) before connecting/);
    expect(result.isError).toBeFalsy();
    expect(fs.executed).toEqual(["read_file"]);
    expect(spare.wire).toEqual([]);
  });

  test("a closed client can be guarded again, then connected through the new view", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const next = await startServer("filesystem", filesystemTools, { connect: false });
    guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    await fs.client.close();
    forget();

    const again = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    await again.connect(next.transport);
    const result = await again.callTool(readCall);

    expect(result.isError).toBeFalsy();
    expect(next.executed).toEqual(["read_file"]);
    await expect(next.transport.send(rawCall(writeCall))).rejects.toThrow(/no admission ticket/);
  });

  test("a client whose transport getter hides the gate cannot be guarded: authorization_failed", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const raw = fs.transport;
    Object.defineProperty(fs.client, "transport", { get: () => raw });

    const error = await refusalOf(() => guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher }));

    expect((error as HopguardError).code).toBe("authorization_failed");
    expect((error as Error).message).toBe("hopguard could not gate this client's transport");
  });

  test("a transport without send is refused when connecting", async () => {
    const fs = await startServer("filesystem", filesystemTools, { connect: false });
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const broken = { start: async () => {}, close: async () => {} } as unknown as Transport;

    const error = await refusalOf(view.connect(broken));

    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe("transport.send: must be a function");
  });

  test("the gated transport starts the inner one and passes its session id, protocol version and handlers through", async () => {
    const fs = await startServer("filesystem", filesystemTools, { connect: false });
    const inner = fs.transport as Transport & { sessionId?: string | undefined };
    let starts = 0;
    const start = inner.start.bind(inner);
    inner.start = () => {
      starts++;
      return start();
    };
    const versions: string[] = [];
    inner.setProtocolVersion = (version) => {
      versions.push(version);
    };
    const closed: string[] = [];
    const errors: string[] = [];
    inner.onclose = () => closed.push("inner");
    inner.onerror = (error) => errors.push(`inner ${error.message}`);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    view.onclose = () => closed.push("client");
    view.onerror = (error) => errors.push(`client ${error.message}`);

    await view.connect(inner);
    inner.sessionId = "session-1";
    inner.onerror?.(new Error("boom"));
    const sessionId = view.transport?.sessionId;
    const result = await view.callTool(readCall);
    await view.close();

    expect(starts).toBe(1);
    expect(versions).toHaveLength(1);
    expect(sessionId).toBe("session-1");
    expect(result.isError).toBeFalsy();
    expect(errors).toEqual(["inner boom", "client boom"]);
    expect(closed.slice(0, 2)).toEqual(["inner", "client"]);
  });
});

describe("(B) the view's members", () => {
  test("non-tool requests and streams pass through unfiltered; allowed tool streams run; a refused stream yields a result", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const requestStream = (view as unknown as { requestStream: typeof view.experimental.tasks.requestStream })
      .requestStream;
    forget();

    const pinged = await view.request({ method: "ping" }, EmptyResultSchema);
    const listed = await collect(
      view.experimental.tasks.requestStream({ method: "tools/list", params: {} }, ListToolsResultSchema),
    );
    const pingStream = await collect(requestStream({ method: "ping" }, EmptyResultSchema));
    const viaTasks = await collect(
      view.experimental.tasks.requestStream({ method: "tools/call", params: readCall }, CallToolResultSchema),
    );
    const viaProtected = await collect(requestStream({ method: "tools/call", params: readCall }, CallToolResultSchema));
    const refused = await collect(view.experimental.tasks.callToolStream(writeCall));

    expect(pinged).toEqual({});
    expect(listed.map((message) => message.type)).toEqual(["result"]);
    expect((listed[0]?.result as { tools?: unknown[] } | undefined)?.tools).toHaveLength(filesystemTools.length);
    expect(pingStream).toEqual([{ type: "result", result: {} }]);
    expect(viaTasks.map((message) => message.type)).toEqual(["result"]);
    expect(viaProtected.map((message) => message.type)).toEqual(["result"]);
    expect(refused.map((message) => message.type)).toEqual(["result"]);
    expect(fs.executed).toEqual(["read_file", "read_file"]);
    expect(decisions()).toEqual(["allow", "allow", "deny"]);
  });

  test("requests JSON cannot carry, or that are not objects, are refused as invalid input naming the request", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    forget();

    const errors = [];
    for (const request of [42, [{ method: "tools/call", params: readCall }], undefined, { method: "ping", n: 1n }]) {
      errors.push(await refusalOf(view.request(request as never, EmptyResultSchema)));
    }

    for (const error of errors) expect(InvalidInputError.isInstance(error) && error.path).toBe("request");
    expect((errors[0] as Error).message).toBe("request: must be an object");
    expect((errors[2] as Error).message).toBe("request: cannot be sent as JSON");
    expect(fs.wire).toEqual([]);
  });

  test("the task methods that cannot call a tool are the client's own; handlers read back what was set", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const handler = () => {};

    view.onerror = handler;
    const tasks = view.experimental.tasks;
    const results = await Promise.allSettled([
      tasks.listTasks(),
      fs.client.experimental.tasks.listTasks(),
      tasks.getTask("t"),
      fs.client.experimental.tasks.getTask("t"),
    ]);

    expect(view.onerror).toBe(handler);
    expect(results.map((result) => result.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toBe(
      String((results[1] as PromiseRejectedResult).reason),
    );
    expect(String((results[2] as PromiseRejectedResult).reason)).toBe(
      String((results[3] as PromiseRejectedResult).reason),
    );
  });

  test("the view's members are `in` it, and it cannot be stripped of them nor given another prototype", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const view = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const prototype = Object.getPrototypeOf(view);

    expect(["callTool", "request", "listTools", "transport", "onerror"].every((member) => member in view)).toBe(true);
    expect(Symbol.iterator in view).toBe(false);
    expect(() => delete (view as unknown as Record<string, unknown>).callTool).toThrow(TypeError);
    expect(() => Object.setPrototypeOf(view, null)).toThrow(TypeError);
    expect(Object.getPrototypeOf(view)).toBe(prototype);
    expect(Reflect.set(view, "_transport", fs.transport)).toBe(false);
    expect(Reflect.set(view, "callTool", () => ({ content: [] }))).toBe(false);
    expect(Reflect.preventExtensions(view)).toBe(false);
    expect(typeof view.callTool).toBe("function");
  });
});

describe("(B) guardMcpClient's own input checks", () => {
  test("a client that is not an object, and options without a usable server, approve or onDenied, are invalid input", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const attempt = (client: unknown, options: unknown) =>
      refusalOf(() => guardMcpClient(client as Client, options as never));

    const cases: [unknown, string][] = [
      [await attempt(null, { server: "filesystem" }), "client: must be an MCP Client"],
      [await attempt(42, { server: "filesystem" }), "client: must be an MCP Client"],
      [await attempt(fs.client, undefined), "options.server: must be a non-empty string without '/'"],
      [await attempt(fs.client, {}), "options.server: must be a non-empty string without '/'"],
      [await attempt(fs.client, { server: 7 }), "options.server: must be a non-empty string without '/'"],
      [
        await attempt(fs.client, { server: "filesystem", onDenied: "ignore" }),
        'options.onDenied: must be "refuse" or "throw"',
      ],
      [await attempt(fs.client, { server: "filesystem", approve: "yes" }), "options.approve: must be a function"],
    ];

    for (const [error, message] of cases) {
      expect(InvalidInputError.isInstance(error), message).toBe(true);
      expect((error as Error).message).toBe(message);
    }
  });
});

describe("(B) one transport gated twice", () => {
  test("a second client on an already gated transport, guarded too, gates the original send once: its allowed call runs", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const first = guardMcpClient(fs.client, { server: "filesystem", delegation: asResearcher });
    const other = new Client({ name: "second", version: "0.0.0" });
    other.onerror = () => {};
    fs.client.onerror = () => {};
    await other.connect(fs.transport);
    forget();

    const second = guardMcpClient(other, { server: "filesystem", delegation: asResearcher });
    const viaSecond = await second.callTool(readCall);
    const viaFirst = await first.callTool(readCall);
    const raw = await refusalOf(fs.transport.send(rawCall(writeCall)));

    expect(viaSecond.isError).toBeFalsy();
    expect(viaFirst.isError).toBeFalsy();
    expect(String(raw)).toMatch(/no admission ticket/);
    // The gate replaced send the way the transport had it: still reassignable, not listed among its own fields.
    expect(Object.getOwnPropertyDescriptor(fs.transport, "send")).toMatchObject({
      writable: true,
      configurable: true,
      enumerable: false,
    });
    expect(fs.executed).toEqual(["read_file", "read_file"]);
    expect(decisions()).toEqual(["allow", "allow"]);
    await other.close();
  });
});

describe("(B) a listing honours the caller's abort signal", () => {
  test("a listing aborted while the PDP is judging it lists no tools", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const controller = new AbortController();
    let armed = false;
    const aborting: PdpClient = {
      checkResources(request, options) {
        if (armed) controller.abort(new Error("the user went away"));
        return pdp.checkResources(request, options);
      },
      planResources(request, options) {
        if (armed) controller.abort(new Error("the user went away"));
        return pdp.planResources(request, options);
      },
    };
    const delegation = await createGuard({ client: pdp }).forUser(alice).delegate(researcher);
    const judged = createGuard({ client: aborting });
    const view = guardMcpClient(fs.client, {
      server: "filesystem",
      delegation: await judged.forUser(alice).delegate(researcher),
    });
    const whole = await guardMcpClient(fs.client, { server: "filesystem", delegation }).listTools();

    armed = true;
    const listed = await view.listTools(undefined, { signal: controller.signal });

    expect(whole.tools.map((listedTool) => listedTool.name)).toEqual(["read_file"]);
    expect(listed.tools).toEqual([]);
  });
});

describe("(B) approval reasons in the refusal", () => {
  /** The real PDP, with the approval outputs' reasons rewritten: none at all, or one per hop. */
  const rewritingReasons = (rewrite: (reason: string, index: number) => string | undefined): PdpClient => {
    let index = 0;
    return {
      async checkResources(request, options) {
        const response = await pdp.checkResources(request, options);
        for (const result of response.results) {
          for (const output of result.outputs) {
            const value = output.value as Record<string, unknown> | undefined;
            if (value?.approval !== "required") continue;
            const { reason, ...rest } = value;
            const next = rewrite(String(reason), index++);
            (output as { value: unknown }).value = next === undefined ? rest : { ...rest, reason: next };
          }
        }
        return response;
      },
      planResources: (request, options) => pdp.planResources(request, options),
    };
  };

  test("no reason adds no parentheses; several reasons are joined with '; '", async () => {
    const fs = await startServer("filesystem", filesystemTools);
    const unexplained = await createGuard({ client: rewritingReasons(() => undefined) })
      .forUser(alice)
      .delegate(scribe);
    const twofold = await createGuard({ client: rewritingReasons((reason, index) => `${reason} #${index}`) })
      .forUser(alice)
      .delegate(scribe);

    const bare = refusalText(
      await guardMcpClient(fs.client, { server: "filesystem", delegation: unexplained }).callTool(moveCall),
    );
    const joined = refusalText(
      await guardMcpClient(fs.client, { server: "filesystem", delegation: twofold }).callTool(moveCall),
    );

    expect(bare).toBe(
      "hopguard refused filesystem/move_file: a human's approval is required and no approver is configured",
    );
    expect(joined).toMatch(
      /^hopguard refused filesystem\/move_file: a human's approval is required \(moving files changes what others rely on #\d+; moving files changes what others rely on #\d+\) and no approver is configured$/,
    );
    expect(fs.wire).toEqual([]);
  });
});

describe("(B) a transport reconnected through the view", () => {
  test("reconnecting the same transport object replaces hopguard's inbound handler: every answer arrives once", async () => {
    const executed: string[] = [];
    const transport = new RestartableTransport(async (serverSide) => {
      const mcp = new Server({ name: "filesystem", version: "0.0.0" }, { capabilities: { tools: {} } });
      mcp.setRequestHandler(ListToolsRequestSchema, () => ({ tools: filesystemTools }));
      mcp.setRequestHandler(CallToolRequestSchema, (request) => {
        executed.push(request.params.name);
        return { content: [] };
      });
      await mcp.connect(serverSide);
    });
    const client = new Client({ name: "hopguard-test", version: "0.0.0" });
    const view = guardMcpClient(client, { server: "filesystem", delegation: asResearcher });
    const errors: string[] = [];
    view.onerror = (error) => errors.push(error.message);

    await view.connect(transport);
    const first = await view.callTool(readCall);
    await view.close();
    await view.connect(transport);
    const second = await view.callTool(readCall);
    const raw = await refusalOf(transport.send(rawCall(writeCall)));
    await view.close();

    expect([first.isError, second.isError]).toEqual([undefined, undefined]);
    expect(executed).toEqual(["read_file", "read_file"]);
    expect(String(raw)).toMatch(/no admission ticket/);
    expect(errors).toEqual([]);
  });
});
