import type { MCPTransport } from "@ai-sdk/mcp";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { CallToolResult, JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { SpanStatusCode } from "@opentelemetry/api";
import { type CryptoKey, decodeJwt, generateKeyPair } from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, test, vi } from "vitest";
import { delegationMetaKey, delegationTokenTransport, guardMcpClient } from "../../../src/adapters/mcp/index.ts";
import {
  createGuard,
  createTokenSigner,
  createTokenVerifier,
  type Delegation,
  InvalidInputError,
  runAs,
  SpanAttributes,
  SpanNames,
  type TokenSigner,
  type TokenSigningRequest,
} from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";
import { alice, bob, planner, researcher, scribe } from "../../support/users.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
const guard = createGuard({ client: pdp, tracer: tracing.tracer });
const read = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const write = { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } };

let publicKey: CryptoKey;
let signer: CountingSigner;
let aliceResearcher: Delegation;
let aliceScribe: Delegation;
let bobPlanner: Delegation;

/** A real signer that counts how often it signed. */
interface CountingSigner extends TokenSigner {
  signed: number;
}

function counting(inner: TokenSigner): CountingSigner {
  const counter: CountingSigner = {
    signed: 0,
    sign: (request: TokenSigningRequest) => {
      counter.signed++;
      return inner.sign(request);
    },
  };
  return counter;
}

beforeAll(async () => {
  const keys = await generateKeyPair("Ed25519");
  publicKey = keys.publicKey;
  signer = counting(createTokenSigner({ key: keys.privateKey, kid: "k1", issuer: "agent-host" }));
  aliceResearcher = await (await guard.forUser(alice).delegate(planner)).delegate({
    ...researcher,
    scope: { tools: ["filesystem/read_*"] },
  });
  aliceScribe = await guard.forUser(alice).delegate(scribe);
  bobPlanner = await guard.forUser(bob).delegate(planner);
});

/** An in-memory MCP server that records every message it receives and what its tools ran. */
interface Recorded {
  received: JSONRPCMessage[];
  executed: string[];
  server: McpServer;
  clientTransport: Transport;
}

async function recordingServer(): Promise<Recorded> {
  const received: JSONRPCMessage[] = [];
  const executed: string[] = [];
  const server = new McpServer({ name: "filesystem", version: "0.0.0" });
  server.registerTool(
    "read_file",
    { description: "Read a file", inputSchema: {}, annotations: { readOnlyHint: true } },
    async () => {
      executed.push("read_file");
      return { content: [{ type: "text", text: "contents" }] };
    },
  );
  server.registerTool(
    "write_file",
    { description: "Write a file", inputSchema: {}, annotations: { destructiveHint: true } },
    async () => {
      executed.push("write_file");
      return { content: [{ type: "text", text: "written" }] };
    },
  );
  server.registerResource("notes", "file:///workspace/alice/notes.md", {}, async (uri) => ({
    contents: [{ uri: uri.href, text: "notes" }],
  }));
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  // A handler set before connect only observes: the server still handles every message.
  serverTransport.onmessage = (message) => {
    received.push(message);
  };
  await server.connect(serverTransport);
  return { received, executed, server, clientTransport };
}

const requests = (messages: JSONRPCMessage[]) => messages.filter((m) => "method" in m && "id" in m);
const notifications = (messages: JSONRPCMessage[]) => messages.filter((m) => "method" in m && !("id" in m));
const metaOf = (message: JSONRPCMessage): Record<string, unknown> =>
  ((message as { params?: { _meta?: Record<string, unknown> } }).params?._meta ?? {}) as Record<string, unknown>;
const tokenOf = (message: JSONRPCMessage | undefined): unknown =>
  message === undefined ? undefined : metaOf(message)[delegationMetaKey];
const refusalOf = (result: CallToolResult): string => {
  expect(result.isError).toBe(true);
  return result.content.map((part) => (part.type === "text" ? part.text : "")).join("");
};
const lastCall = (messages: JSONRPCMessage[]): JSONRPCMessage | undefined =>
  requests(messages).findLast((m) => "method" in m && m.method === "tools/call");

let recorded: Recorded;
let client: Client;
beforeEach(async () => {
  recorded = await recordingServer();
  client = new Client({ name: "agent", version: "0.0.0" });
  signer.signed = 0;
  tracing.reset();
});
afterEach(async () => {
  vi.useRealTimers();
  await client.close();
  await recorded.server.close();
});

describe("delegationTokenTransport: what each message carries", () => {
  test("every request carries the chain's token, initialize included; notifications and responses do not", async () => {
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, {
        signer,
        audience: "filesystem",
        delegation: aliceResearcher,
      }),
    );
    await client.listTools();
    await client.callTool(read);
    await client.readResource({ uri: "file:///workspace/alice/notes.md" });
    await client.ping();
    // The server asks the client something: the client's answer is a response, which carries no token.
    await recorded.server.server.ping();

    const sent = recorded.received;
    expect(requests(sent).map((m) => ("method" in m ? m.method : ""))).toEqual([
      "initialize",
      "tools/list",
      "tools/call",
      "resources/read",
      "ping",
    ]);
    const tokens = requests(sent).map(tokenOf);
    expect(tokens.every((token) => typeof token === "string" && token.split(".").length === 3)).toBe(true);
    // One chain, one audience: one token, signed once, for every request.
    expect(new Set(tokens).size).toBe(1);
    expect(signer.signed).toBe(1);
    expect(notifications(sent).map((m) => ("method" in m ? m.method : ""))).toEqual(["notifications/initialized"]);
    expect(notifications(sent).map(tokenOf)).toEqual([undefined]);
    const responses = sent.filter((m) => !("method" in m));
    expect(responses).toHaveLength(1);
    expect(JSON.stringify(responses)).not.toContain(delegationMetaKey);
    expect(recorded.executed).toEqual(["read_file"]);
  });

  test("a token verifies, and the server's guard rebuilds it to the same chain, deciding the same", async () => {
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, {
        signer,
        audience: "filesystem",
        delegation: aliceResearcher,
      }),
    );
    await client.callTool(read);
    const token = tokenOf(lastCall(recorded.received));
    const tokens = createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: "agent-host" });

    const verified = await tokens.verify(token);
    expect(verified.chain.map((hop) => hop.id)).toEqual(["alice", "planner", "researcher"]);
    expect(verified.claims.aud).toEqual(["filesystem"]);
    expect(verified.claims.exp - verified.claims.iat).toBe(60);

    const rebuilt = await createGuard({ client: pdp, tokens }).fromToken(token as string);
    expect(rebuilt.chain).toEqual(aliceResearcher.chain);
    expect(rebuilt.scope.tools).toEqual(["filesystem/read_*"]);
    const call = { server: "filesystem", tool: "read_file", arguments: read.arguments };
    expect((await rebuilt.authorize(call)).allowed).toBe(true);
    expect(await rebuilt.authorize({ ...call, tool: "write_file" })).toMatchObject({ deniedBy: "scope" });
    // A server under another name refuses it.
    await expect(createTokenVerifier({ keys: publicKey, audience: "memory" }).verify(token)).rejects.toMatchObject({
      code: "token_audience_mismatch",
    });
  });

  test("the caller's message is never changed; a token the caller put under the key is replaced", async () => {
    const transport = delegationTokenTransport(recorded.clientTransport, {
      signer,
      audience: "filesystem",
      delegation: aliceResearcher,
    });
    await client.connect(transport);
    const message = {
      jsonrpc: "2.0" as const,
      id: 900,
      method: "tools/call",
      params: { name: "read_file", arguments: {}, _meta: { [delegationMetaKey]: "forged", progressToken: 7 } },
    };
    const before = structuredClone(message);
    await transport.send(message);
    await vi.waitFor(() => expect(recorded.executed).toEqual(["read_file"]));

    expect(message).toEqual(before);
    const sent = lastCall(recorded.received);
    expect(tokenOf(sent)).not.toBe("forged");
    expect(decodeJwt(tokenOf(sent) as string).sub).toBe("alice");
    expect(metaOf(sent as JSONRPCMessage).progressToken).toBe(7);
  });

  test("without any chain a request goes without a token, and one the caller put there is dropped", async () => {
    const transport = delegationTokenTransport(recorded.clientTransport, { signer, audience: "filesystem" });
    await client.connect(transport);
    await client.callTool(read);
    await transport.send({
      jsonrpc: "2.0",
      id: 901,
      method: "tools/call",
      params: { name: "read_file", arguments: {}, _meta: { [delegationMetaKey]: "forged" } },
    });
    await vi.waitFor(() => expect(recorded.executed).toHaveLength(2));

    expect(requests(recorded.received).map(tokenOf)).toEqual([undefined, undefined, undefined]);
    expect(JSON.stringify(recorded.received)).not.toContain("forged");
    expect(signer.signed).toBe(0);
  });
});

describe("delegationTokenTransport: which chain", () => {
  test("the ambient chain of each call: two chains at once get two tokens, each naming its own chain", async () => {
    await client.connect(delegationTokenTransport(recorded.clientTransport, { signer, audience: "filesystem" }));
    await Promise.all([
      runAs(aliceResearcher, () => client.callTool(read)),
      runAs(bobPlanner, () => client.callTool(read)),
    ]);
    const calls = requests(recorded.received).filter((m) => "method" in m && m.method === "tools/call");
    const claims = calls.map((m) => decodeJwt(tokenOf(m) as string));
    expect(claims.map((c) => c.sub).sort()).toEqual(["alice", "bob"]);
    const chains = claims.map((c) => (c.hopguard as { chain: { id: string }[] }).chain.map((hop) => hop.id).join(">"));
    expect(chains.sort()).toEqual(["alice>planner>researcher", "bob>planner"]);
    expect(new Set(calls.map(tokenOf)).size).toBe(2);
  });

  test("a sub-agent's chain delegated from the configured one is the chain its calls carry", async () => {
    const alicePlanner = await guard.forUser(alice).delegate(planner);
    const subAgent = await alicePlanner.delegate(researcher);
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, { signer, audience: "filesystem", delegation: alicePlanner }),
    );
    await runAs(subAgent, () => client.callTool(read));
    await runAs(bobPlanner, () => client.callTool(read));
    const [fromSubAgent, fromStranger] = requests(recorded.received)
      .filter((m) => "method" in m && m.method === "tools/call")
      .map((m) => decodeJwt(tokenOf(m) as string).hopguard as { chain: { id: string }[] });
    expect(fromSubAgent?.chain.map((hop) => hop.id)).toEqual(["alice", "planner", "researcher"]);
    // An unrelated ambient chain never replaces the configured one.
    expect(fromStranger?.chain.map((hop) => hop.id)).toEqual(["alice", "planner"]);
  });

  test("a token is reused until shortly before it expires, then a new one is signed", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, {
        signer,
        audience: "filesystem",
        delegation: aliceResearcher,
      }),
    );
    await Promise.all([client.callTool(read), client.callTool(read), client.callTool(read)]);
    expect(signer.signed).toBe(1);
    vi.setSystemTime(Date.now() + 49_000);
    await client.callTool(read);
    expect(signer.signed).toBe(1);
    vi.setSystemTime(Date.now() + 2_000);
    await client.callTool(read);
    expect(signer.signed).toBe(2);
    const tokens = requests(recorded.received).map(tokenOf);
    expect(new Set(tokens).size).toBe(2);
    expect(decodeJwt(tokens.at(-1) as string).exp).toBeGreaterThan(decodeJwt(tokens[0] as string).exp as number);
  });

  test("a chain that cannot be signed sends nothing: expired, or a failing signer (retried on the next request)", async () => {
    const expiresAt = Date.now() + 60_000;
    const shortLived = await guard.forUser(alice).delegate({ ...planner, scope: { expiresAt } });
    let failing = true;
    const flaky: TokenSigner = {
      sign: (request) => (failing ? Promise.reject(new Error("HSM unreachable")) : signer.sign(request)),
    };
    const transport = delegationTokenTransport(recorded.clientTransport, { signer: flaky, audience: "filesystem" });
    await client.connect(transport);

    await expect(runAs(aliceScribe, () => client.callTool(read))).rejects.toThrow("HSM unreachable");
    failing = false;
    await runAs(aliceScribe, () => client.callTool(read));
    expect(recorded.executed).toEqual(["read_file"]);

    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(expiresAt + 1);
    await expect(runAs(shortLived, () => client.callTool(read))).rejects.toThrow(InvalidInputError);
    expect(recorded.executed).toEqual(["read_file"]);
    expect(requests(recorded.received).filter((m) => "method" in m && m.method === "tools/call")).toHaveLength(1);
  });
});

describe("delegationTokenTransport: trace context and order", () => {
  test("a request sent inside an active span carries its traceparent; outside one, none", async () => {
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, {
        signer,
        audience: "filesystem",
        delegation: aliceResearcher,
      }),
    );
    const ids = await tracing.tracer.startActiveSpan("agent.turn", async (span) => {
      await client.callTool(read);
      span.end();
      return span.spanContext();
    });
    expect(metaOf(lastCall(recorded.received) as JSONRPCMessage).traceparent).toBe(
      `00-${ids.traceId}-${ids.spanId}-01`,
    );
    await client.callTool(read);
    expect(metaOf(lastCall(recorded.received) as JSONRPCMessage)).not.toHaveProperty("traceparent");
  });

  test("the caller's own traceparent stands; traceContext: false sends none", async () => {
    const transport = delegationTokenTransport(recorded.clientTransport, {
      signer,
      audience: "filesystem",
      delegation: aliceResearcher,
      traceContext: false,
    });
    await client.connect(transport);
    await tracing.tracer.startActiveSpan("agent.turn", async (span) => {
      await client.callTool(read);
      await transport.send({
        jsonrpc: "2.0",
        id: 902,
        method: "tools/call",
        params: { name: "read_file", arguments: {}, _meta: { traceparent: "00-caller" } },
      });
      span.end();
    });
    await vi.waitFor(() => expect(recorded.executed).toHaveLength(2));
    const [first, second] = requests(recorded.received).filter((m) => "method" in m && m.method === "tools/call");
    expect(metaOf(first as JSONRPCMessage)).not.toHaveProperty("traceparent");
    expect(metaOf(second as JSONRPCMessage).traceparent).toBe("00-caller");
  });

  test("messages leave in the order they were sent, though the request waits for its signature", async () => {
    const sent: JSONRPCMessage[] = [];
    let release: () => void = () => {};
    let signing = false;
    const slow: TokenSigner = {
      sign: async (request) => {
        signing = true;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return signer.sign(request);
      },
    };
    const inner: Transport = {
      start: async () => {},
      close: async () => {},
      send: async (message) => {
        sent.push(message);
      },
    };
    const transport = delegationTokenTransport(inner, { signer: slow, audience: "filesystem" });
    const request = runAs(aliceResearcher, () =>
      transport.send({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "read_file" } }),
    );
    const cancel = transport.send({
      jsonrpc: "2.0",
      method: "notifications/cancelled",
      params: { requestId: 1 },
    });
    await vi.waitFor(() => expect(signing).toBe(true));
    await new Promise((resolve) => setImmediate(resolve));
    // The notification needs no token, yet it waits for the request sent before it.
    expect(sent).toEqual([]);
    release();
    await Promise.all([request, cancel]);
    expect(sent.map((m) => ("method" in m ? m.method : ""))).toEqual(["tools/call", "notifications/cancelled"]);
    expect(typeof tokenOf(sent[0])).toBe("string");
  });
});

describe("delegationTokenTransport: with the client guard and other client libraries", () => {
  test("guardMcpClient on a client connected over it: the guard decides, allowed calls leave with a token", async () => {
    await client.connect(
      delegationTokenTransport(recorded.clientTransport, {
        signer,
        audience: "filesystem",
        delegation: aliceResearcher,
      }),
    );
    const filesystem = guardMcpClient(client, { server: "filesystem", delegation: aliceResearcher });
    expect((await filesystem.callTool(read)).isError).toBeFalsy();
    expect(refusalOf((await filesystem.callTool(write)) as CallToolResult)).toContain("denied by scope");
    expect(recorded.executed).toEqual(["read_file"]);
    const calls = requests(recorded.received).filter((m) => "method" in m && m.method === "tools/call");
    expect(calls).toHaveLength(1);
    expect(decodeJwt(tokenOf(calls[0]) as string).sub).toBe("alice");
    const denied = tracing.spans().filter((span) => span.attributes[SpanAttributes.decision] === "deny");
    expect(denied.map((span) => span.attributes[SpanAttributes.deniedBy])).toEqual(["scope"]);
  });

  test("a guarded view connected through it (connect after guarding) sends tokens too", async () => {
    const filesystem = guardMcpClient(client, { server: "filesystem", tracer: tracing.tracer });
    await runAs(aliceScribe, async () => {
      await filesystem.connect(delegationTokenTransport(recorded.clientTransport, { signer, audience: "filesystem" }));
      await filesystem.callTool(write);
    });
    const refused = (await filesystem.callTool(write)) as CallToolResult;
    expect(recorded.executed).toEqual(["write_file"]);
    const sent = requests(recorded.received);
    expect(sent.map((m) => ("method" in m ? m.method : ""))).toContain("tools/call");
    expect(sent.every((m) => decodeJwt(tokenOf(m) as string).sub === "alice")).toBe(true);
    expect(refusalOf(refused)).toContain("has no delegation chain");
    // Outside runAs the client guard has no chain and refuses on its own: its span says so, and nothing was sent.
    const refusedSpan = tracing.spans().filter((span) => span.status.code === SpanStatusCode.ERROR);
    expect(onlySpan(refusedSpan, SpanNames.authorize).status.message).toContain("has no delegation chain");
    expect(sent.filter((m) => "method" in m && m.method === "tools/call")).toHaveLength(1);
  });

  test("forwards sessionId, protocol version and @ai-sdk/mcp's discovery flags to the inner transport", async () => {
    const inner = {
      start: async () => {},
      close: vi.fn(async (_options?: { signal?: AbortSignal }) => {}),
      send: async () => {},
      sessionId: "s-1",
      protocolVersion: undefined as string | undefined,
      supportsProtocolVersionDiscovery: true,
      waitsForProtocolVersionDiscovery: true,
      supportsMcpToolParameterHeaders: false,
    };
    const transport = delegationTokenTransport(inner, { signer, audience: "filesystem" });
    expect(transport.sessionId).toBe("s-1");
    expect(transport.supportsProtocolVersionDiscovery).toBe(true);
    expect(transport.waitsForProtocolVersionDiscovery).toBe(true);
    expect(transport.supportsMcpToolParameterHeaders).toBe(false);
    // No setter inside: the version is set the way @ai-sdk/mcp sets it.
    transport.setProtocolVersion("2025-11-25");
    expect(inner.protocolVersion).toBe("2025-11-25");
    const signal = new AbortController().signal;
    await transport.close({ signal });
    expect(inner.close).toHaveBeenCalledWith({ signal });

    // The wrapper is an @ai-sdk/mcp MCPTransport as typed (exactOptionalPropertyTypes), and absent flags read false.
    const bare: MCPTransport = delegationTokenTransport(
      { start: async () => {}, close: async () => {}, send: async () => {} },
      { signer, audience: "filesystem" },
    );
    expect([bare.supportsProtocolVersionDiscovery, bare.waitsForProtocolVersionDiscovery]).toEqual([false, false]);

    const setter = { ...inner, setProtocolVersion: vi.fn() };
    delegationTokenTransport(setter, { signer, audience: "filesystem" }).setProtocolVersion("2025-06-18");
    expect(setter.setProtocolVersion).toHaveBeenCalledWith("2025-06-18");
    // What the inner transport reports reaches whatever handlers are set on the wrapper, set before or after.
    const seen: unknown[] = [];
    transport.onerror = (error) => seen.push(error.message);
    transport.onclose = () => seen.push("closed");
    transport.onmessage = (message, extra) => seen.push(message, extra);
    const asInner = inner as Transport;
    asInner.onerror?.(new Error("broken pipe"));
    asInner.onmessage?.({ jsonrpc: "2.0", id: 1, result: {} }, { requestInfo: { headers: {} } });
    asInner.onclose?.();
    expect(seen).toEqual([
      "broken pipe",
      { jsonrpc: "2.0", id: 1, result: {} },
      { requestInfo: { headers: {} } },
      "closed",
    ]);
  });

  test("refuses what cannot work: no transport, no signer, no audience, a forged chain, a bad ttl or key", () => {
    const inner = recorded.clientTransport;
    const base = { signer, audience: "filesystem" };
    const forged = { chain: ["alice"], authorize: async () => ({ allowed: true }) } as unknown as Delegation;
    const attempts: [string, () => unknown][] = [
      ["inner.send", () => delegationTokenTransport({ start: async () => {} } as unknown as Transport, base)],
      ["options.signer", () => delegationTokenTransport(inner, { ...base, signer: {} as TokenSigner })],
      ["options.audience", () => delegationTokenTransport(inner, { ...base, audience: "" })],
      ["options.audience", () => delegationTokenTransport(inner, { ...base, audience: [] })],
      ["options.delegation", () => delegationTokenTransport(inner, { ...base, delegation: forged })],
      ["options.ttlSeconds", () => delegationTokenTransport(inner, { ...base, ttlSeconds: 0 })],
      ["options.ttlSeconds", () => delegationTokenTransport(inner, { ...base, ttlSeconds: Number.NaN })],
      ["options.metaKey", () => delegationTokenTransport(inner, { ...base, metaKey: "" })],
    ];
    for (const [field, attempt] of attempts) {
      expect(attempt, field).toThrow(InvalidInputError);
      expect(attempt, field).toThrow(field);
    }
  });
});
