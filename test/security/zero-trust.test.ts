// Zero trust across processes, end to end: each of the three MCP client libraries — the SDK's `Client`,
// `@langchain/mcp-adapters` and `@ai-sdk/mcp` — talks over real Streamable HTTP on loopback to an MCP server guarded by
// `guardMcpServer`, through hopguard's `delegationTokenTransport`. The server trusts nothing the client decided: it
// verifies each request's delegation token and authorizes every hop again on its OWN PDP. Each case asserts what the
// server really ran (its side-effect log) and the server-side span that explains it.
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createMCPClient } from "@ai-sdk/mcp";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { type CallToolResult, McpError } from "@modelcontextprotocol/sdk/types.js";
import { SpanStatusCode } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { generateText, stepCountIs } from "ai";
import { generateKeyPair } from "jose";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { z } from "zod";
import { serveOverHttp } from "../../examples/support/http-mcp-server.ts";
import { delegationTokenTransport, guardMcpClient, guardMcpServer } from "../../src/adapters/mcp/index.ts";
import { currentDelegation } from "../../src/current-delegation.ts";
import {
  createGuard,
  createTokenSigner,
  createTokenVerifier,
  type Delegation,
  runAs,
  SpanAttributes,
  SpanNames,
  type TokenSigner,
  type TokenVerifier,
} from "../../src/index.ts";
import { type LocalPdp, startLocalPdp } from "../../src/local-pdp.ts";
import { scriptedModel, toolResultsSeen } from "../adapters/ai/scripted-model.ts";
import { toolMessages } from "../adapters/langchain/support.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { memoryTracing, onlySpan } from "../support/tracing.ts";
import { alice, bob, planner, researcher, scribe } from "../support/users.ts";

const sharedPdp = sharedPdpClient();
const clientTracing = memoryTracing();
const clientGuard = createGuard({ client: sharedPdp, tracer: clientTracing.tracer });

const inAlice = "/workspace/alice/notes.md";
const inBob = "/workspace/bob/pipeline.md";
const readAlice = { name: "read_file", arguments: { path: inAlice } };
const writeAlice = { name: "write_file", arguments: { path: inAlice, content: "x" } };

/** What a server's tool handler ran, for which chain (the server's `runAs` around every handler). */
interface Execution {
  tool: string;
  chain: string | undefined;
}

/** A guarded "filesystem" MCP server served statelessly over Streamable HTTP on 127.0.0.1. */
interface GuardedHttpServer {
  url: URL;
  executed: Execution[];
  tracing: ReturnType<typeof memoryTracing>;
  close(): Promise<void>;
}

/**
 * Serves a fresh guarded `McpServer` per HTTP request (the SDK's stateless mode): its tools record what ran, its
 * guard decides on `pdp` (the server's own PDP) with the tokens `tokens` accepts.
 */
async function serveGuarded(pdp: LocalPdp["client"], tokens: TokenVerifier): Promise<GuardedHttpServer> {
  const executed: Execution[] = [];
  const tracing = memoryTracing();
  const ran = (tool: string) => executed.push({ tool, chain: currentDelegation()?.chain.join(">") });
  const makeServer = () => {
    const server = guardMcpServer(new McpServer({ name: "filesystem", version: "0.0.0" }), {
      server: "filesystem",
      client: pdp,
      tokens,
      tracer: tracing.tracer,
    });
    server.registerTool(
      "read_file",
      { description: "Read a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
      async ({ path }) => {
        ran("read_file");
        return { content: [{ type: "text", text: `contents of ${path}` }] };
      },
    );
    server.registerTool(
      "write_file",
      {
        description: "Write a file",
        inputSchema: { path: z.string(), content: z.string() },
        annotations: { destructiveHint: true },
      },
      async ({ path }) => {
        ran("write_file");
        return { content: [{ type: "text", text: `wrote ${path}` }] };
      },
    );
    server.registerTool(
      "list_allowed_directories",
      { description: "List the directories this server may touch", annotations: { readOnlyHint: true } },
      async () => {
        ran("list_allowed_directories");
        return { content: [{ type: "text", text: "/workspace" }] };
      },
    );
    return server;
  };
  const http = await serveOverHttp(makeServer);
  return { url: http.url, executed, tracing, close: http.close };
}

/** The repo's policies with one rule taken out: the stricter policy set of a server that never lets anyone write. */
function policiesWithoutRule(rule: string): string {
  const source = fileURLToPath(new URL("../../policies/", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "hopguard-strict-policies-"));
  for (const file of readdirSync(source).filter((name) => name.endsWith(".yaml"))) {
    copyFileSync(join(source, file), join(dir, file));
  }
  const file = join(dir, "mcp_filesystem.yaml");
  const lines = readFileSync(file, "utf8").split("\n");
  const start = lines.indexOf(`    - name: ${rule}`);
  if (start < 0) throw new Error(`no rule ${rule} in mcp_filesystem.yaml`);
  let end = start + 1;
  while (end < lines.length && !/^ {4}(- name:|#)/.test(lines[end] as string)) end++;
  writeFileSync(file, [...lines.slice(0, start), ...lines.slice(end)].join("\n"));
  return dir;
}

let signer: TokenSigner;
let tokens: TokenVerifier;
let strictPdp: LocalPdp;
let strictPolicies: string;
/** Guarded by the run's shared PDP: the same policies the clients' guard uses. */
let server: GuardedHttpServer;
/** Guarded by a PDP of its own whose policies have no rule allowing writes. */
let strict: GuardedHttpServer;
let aliceScribe: Delegation;
let aliceResearcher: Delegation;
let bobPlanner: Delegation;
const clients: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  const keys = await generateKeyPair("Ed25519");
  signer = createTokenSigner({ key: keys.privateKey, kid: "k1", issuer: "agent-host" });
  tokens = createTokenVerifier({ keys: keys.publicKey, audience: "filesystem", issuer: "agent-host" });
  strictPolicies = policiesWithoutRule("write-in-workspace");
  strictPdp = await startLocalPdp({ policyDir: strictPolicies });
  server = await serveGuarded(sharedPdp, tokens);
  strict = await serveGuarded(strictPdp.client, tokens);
  aliceScribe = await clientGuard.forUser(alice).delegate(scribe);
  aliceResearcher = await (await clientGuard.forUser(alice).delegate(planner)).delegate({
    ...researcher,
    scope: { tools: ["filesystem/read_*"] },
  });
  bobPlanner = await clientGuard.forUser(bob).delegate(planner);
}, 60_000);

afterAll(async () => {
  await server?.close();
  await strict?.close();
  await strictPdp?.stop();
  if (strictPolicies !== undefined) rmSync(strictPolicies, { recursive: true, force: true });
});

beforeEach(() => {
  server.executed.length = 0;
  strict.executed.length = 0;
  server.tracing.reset();
  strict.tracing.reset();
  clientTracing.reset();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** An SDK `Client` connected to `target` over Streamable HTTP through the token transport. */
async function sdkClient(target: GuardedHttpServer, delegation?: Delegation): Promise<Client> {
  const client = new Client({ name: "agent", version: "0.0.0" });
  clients.push(client);
  await client.connect(
    delegationTokenTransport(new StreamableHTTPClientTransport(target.url), {
      signer,
      audience: "filesystem",
      ...(delegation === undefined ? {} : { delegation }),
    }),
  );
  return client;
}

const toolNames = async (client: Client): Promise<string[]> =>
  (await client.listTools()).tools.map((tool) => tool.name).sort();
const refusalOf = (result: unknown): string => {
  const { isError, content } = result as CallToolResult;
  expect(isError).toBe(true);
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
};
const spansNamed = (spans: ReadableSpan[], name: string) => spans.filter((span) => span.name === name);
const decided = (spans: ReadableSpan[], tool: string) =>
  onlySpan(
    spans.filter((span) => span.attributes[SpanAttributes.toolName] === tool),
    SpanNames.authorize,
  );

describe("the MCP SDK Client over Streamable HTTP, to a guarded server", () => {
  test("two chains on one connection see different tool lists: the server filters each request's chain", async () => {
    const client = await sdkClient(server);
    const asScribe = await runAs(aliceScribe, () => toolNames(client));
    const asBobsPlanner = await runAs(bobPlanner, () => toolNames(client));
    const asResearcher = await runAs(aliceResearcher, () => toolNames(client));

    expect(asScribe).toEqual(["list_allowed_directories", "read_file", "write_file"]);
    expect(asBobsPlanner).toEqual(["list_allowed_directories", "read_file"]);
    expect(asResearcher).toEqual(["read_file"]);
    const listings = spansNamed(server.tracing.spans(), SpanNames.listTools);
    expect(listings.map((span) => span.attributes[SpanAttributes.chain])).toEqual([
      ["alice", "scribe"],
      ["bob", "planner"],
      ["alice", "planner", "researcher"],
    ]);
    expect(listings.map((span) => span.attributes[SpanAttributes.toolsCallable])).toEqual([3, 2, 1]);
  });

  test("attack: with no client guard at all, the server alone runs the allowed call and refuses the other", async () => {
    const client = await sdkClient(server, aliceResearcher);
    const trace = await clientTracing.tracer.startActiveSpan("agent.turn", async (span) => {
      expect(refusalOf(await client.callTool(writeAlice))).toMatch(
        /^hopguard refused filesystem\/write_file: denied by scope/,
      );
      const read = (await client.callTool(readAlice)) as CallToolResult;
      expect(read.content).toEqual([{ type: "text", text: `contents of ${inAlice}` }]);
      span.end();
      return span.spanContext().traceId;
    });

    expect(server.executed).toEqual([{ tool: "read_file", chain: "alice>planner>researcher" }]);
    const spans = server.tracing.spans();
    expect(decided(spans, "write_file").attributes).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "scope",
      [SpanAttributes.chain]: ["alice", "planner", "researcher"],
    });
    expect(decided(spans, "read_file").attributes[SpanAttributes.decision]).toBe("allow");
    // The server's decisions sit in the client's trace: the transport carried the traceparent.
    expect(decided(spans, "write_file").spanContext().traceId).toBe(trace);
    expect(decided(spans, "read_file").spanContext().traceId).toBe(trace);
  });

  test("attack: a call the client guard allows is refused by a server whose own PDP has a stricter policy", async () => {
    // Control: the same client guard and chain against a server on the same policies, where the write runs.
    const open = guardMcpClient(await sdkClient(server, aliceScribe), {
      server: "filesystem",
      delegation: aliceScribe,
      tracer: clientTracing.tracer,
    });
    expect((await open.callTool(writeAlice)).isError).toBeFalsy();
    expect(server.executed).toEqual([{ tool: "write_file", chain: "alice>scribe" }]);
    clientTracing.reset();

    const filesystem = guardMcpClient(await sdkClient(strict, aliceScribe), {
      server: "filesystem",
      delegation: aliceScribe,
      tracer: clientTracing.tracer,
    });
    const refused = refusalOf(await filesystem.callTool(writeAlice));
    expect((await filesystem.callTool(readAlice)).isError).toBeFalsy();

    expect(strict.executed).toEqual([{ tool: "read_file", chain: "alice>scribe" }]);
    expect(decided(clientTracing.spans(), "write_file").attributes[SpanAttributes.decision]).toBe("allow");
    const serverSide = decided(strict.tracing.spans(), "write_file");
    expect(serverSide.attributes).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "alice",
    });
    expect(refused).toBe(`hopguard refused filesystem/write_file: ${serverSide.attributes[SpanAttributes.reason]}`);
    expect(refused).toMatch(/denied by user "alice" \(hop 0 of alice → scribe\)/);
  });

  test("attack: a client with no hopguard at all (raw SDK Client, no token) is refused by the server alone", async () => {
    const client = new Client({ name: "rogue", version: "0.0.0" });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(server.url));

    const listing = await client.listTools().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(listing).toBeInstanceOf(McpError);
    expect((listing as McpError).data).toMatchObject({ hopguard: { code: "token_missing" } });
    const write = (await client.callTool(writeAlice)) as CallToolResult;
    expect(refusalOf(write)).toMatch(
      /^hopguard refused filesystem\/write_file: the request carries no delegation token/,
    );
    expect(write._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_missing" });
    expect(refusalOf(await client.callTool(readAlice))).toContain("no delegation token");

    expect(server.executed).toEqual([]);
    const refusals = spansNamed(server.tracing.spans(), SpanNames.authorize);
    expect(refusals).toHaveLength(2);
    for (const span of refusals) {
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes[SpanAttributes.errorType]).toBe("token_missing");
    }
  });

  test("attack: tokens for another server, or signed with another key, are refused before anything runs", async () => {
    const forMemory = new Client({ name: "agent", version: "0.0.0" });
    const otherKey = new Client({ name: "agent", version: "0.0.0" });
    clients.push(forMemory, otherKey);
    await forMemory.connect(
      delegationTokenTransport(new StreamableHTTPClientTransport(server.url), {
        signer,
        audience: "memory",
        delegation: aliceScribe,
      }),
    );
    const stranger = createTokenSigner({ key: (await generateKeyPair("Ed25519")).privateKey, kid: "k1" });
    await otherKey.connect(
      delegationTokenTransport(new StreamableHTTPClientTransport(server.url), {
        signer: stranger,
        audience: "filesystem",
        delegation: aliceScribe,
      }),
    );

    const wrongAudience = (await forMemory.callTool(writeAlice)) as CallToolResult;
    const wrongKey = (await otherKey.callTool(writeAlice)) as CallToolResult;
    expect(refusalOf(wrongAudience)).toContain("hopguard refused filesystem/write_file");
    expect(wrongAudience._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_audience_mismatch" });
    expect(refusalOf(wrongKey)).toContain("hopguard refused filesystem/write_file");
    expect(wrongKey._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_signature_invalid" });

    expect(server.executed).toEqual([]);
    expect(
      spansNamed(server.tracing.spans(), SpanNames.authorize).map((span) => span.attributes[SpanAttributes.errorType]),
    ).toEqual(["token_audience_mismatch", "token_signature_invalid"]);
  });
});

describe("@langchain/mcp-adapters: loadMcpTools over an SDK Client on the token transport", () => {
  test("two chains load different tools; the agent's allowed call runs on the server, the denied one does not", async () => {
    const scribeTools = await loadMcpTools("filesystem", await sdkClient(server, aliceScribe));
    const plannerTools = await loadMcpTools("filesystem", await sdkClient(server, bobPlanner));
    expect(scribeTools.map((tool) => tool.name).sort()).toEqual([
      "list_allowed_directories",
      "read_file",
      "write_file",
    ]);
    expect(plannerTools.map((tool) => tool.name).sort()).toEqual(["list_allowed_directories", "read_file"]);

    const model = fakeModel()
      .respondWithTools([
        { name: "read_file", args: { path: inAlice }, id: "read-1" },
        { name: "write_file", args: { path: inBob, content: "x" }, id: "write-1" },
      ])
      .respond(new AIMessage("done"));
    const agent = createAgent({ model, tools: scribeTools });
    const result = await agent.invoke({ messages: [{ role: "user", content: "read mine, write bob's" }] });

    const answers = toolMessages(result.messages);
    expect(answers.get("read-1")?.text).toBe(`contents of ${inAlice}`);
    expect(answers.get("write-1")?.text).toMatch(
      /hopguard refused filesystem\/write_file: denied by user "alice" \(hop 0 of alice → scribe\)/,
    );
    expect(server.executed).toEqual([{ tool: "read_file", chain: "alice>scribe" }]);
    expect(decided(server.tracing.spans(), "write_file").attributes).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "alice",
    });
  });
});

describe("@ai-sdk/mcp: createMCPClient with the token transport, driving generateText", () => {
  test("two chains get different tools; the model's allowed call runs on the server, the denied one does not", async () => {
    const mcpFor = async (delegation: Delegation) => {
      const mcp = await createMCPClient({
        transport: delegationTokenTransport(new StreamableHTTPClientTransport(server.url), {
          signer,
          audience: "filesystem",
          delegation,
        }),
      });
      clients.push(mcp);
      return mcp;
    };
    const scribeTools = await (await mcpFor(aliceScribe)).tools();
    const plannerTools = await (await mcpFor(bobPlanner)).tools();
    expect(Object.keys(scribeTools).sort()).toEqual(["list_allowed_directories", "read_file", "write_file"]);
    expect(Object.keys(plannerTools).sort()).toEqual(["list_allowed_directories", "read_file"]);

    const model = scriptedModel(
      {
        calls: [
          { id: "read-1", tool: "read_file", input: { path: inAlice } },
          { id: "write-1", tool: "write_file", input: { path: inBob, content: "x" } },
        ],
      },
      { text: "done" },
    );
    const result = await generateText({ model, tools: scribeTools, stopWhen: stepCountIs(3), prompt: "go" });

    expect(result.text).toBe("done");
    const seen = toolResultsSeen(model.doGenerateCalls.at(-1));
    expect(JSON.stringify(seen.get("read-1"))).toContain(`contents of ${inAlice}`);
    expect(JSON.stringify(seen.get("write-1"))).toMatch(
      /hopguard refused filesystem\/write_file: denied by user \\"alice\\" \(hop 0 of alice → scribe\)/,
    );
    expect(server.executed).toEqual([{ tool: "read_file", chain: "alice>scribe" }]);
    expect(decided(server.tracing.spans(), "write_file").attributes).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "alice",
    });
  });
});
