import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, GetPromptResult, ReadResourceResult } from "@modelcontextprotocol/sdk/types.js";
import {
  CallToolRequestSchema,
  EmptyResultSchema,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";
import { SpanStatusCode } from "@opentelemetry/api";
import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { z } from "zod";
import {
  delegationTokenTransport,
  type GuardMcpServerOptions,
  guardMcpClient,
  guardMcpServer,
  type McpRefusal,
} from "../../../../src/adapters/mcp/index.ts";
import { createGuard, type Delegation, SpanAttributes, SpanNames } from "../../../../src/index.ts";
import { connectInMemory, type Execution, filesystemServer } from "../../../support/guarded-server.ts";
import { sharedPdpClient } from "../../../support/pdp.ts";
import { presentingTransport } from "../../../support/presenting-transport.ts";
import { type TokenKeys, tokenKeys } from "../../../support/token-keys.ts";
import { memoryTracing, onlySpan } from "../../../support/tracing.ts";
import { alice, bob, planner, researcher, scribe } from "../../../support/users.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
// The agent host's side: it makes the chains and signs them into tokens; the server trusts nothing else.
const host = createGuard({ client: pdp });

let keys: TokenKeys;
const chains: Record<"alice" | "bob" | "planner" | "researcher" | "bobScribe" | "aliceScribe", Delegation> =
  {} as never;

beforeAll(async () => {
  keys = await tokenKeys();
  chains.alice = host.forUser(alice);
  chains.bob = host.forUser(bob);
  chains.planner = await chains.alice.delegate(planner);
  // Scope names what an agent may use: tools, and resources as `<server>::resource/<uri>`.
  chains.researcher = await chains.planner.delegate({
    ...researcher,
    scope: { tools: ["filesystem/read_*", "filesystem::resource/file:///workspace/alice/*"] },
  });
  chains.bobScribe = await chains.bob.delegate(scribe);
  chains.aliceScribe = await chains.alice.delegate(scribe);
});
beforeEach(() => tracing.reset());

function guarded(options: Partial<GuardMcpServerOptions> = {}): { server: McpServer; executions: Execution[] } {
  const fixture = filesystemServer();
  guardMcpServer(fixture.server, {
    server: "filesystem",
    client: pdp,
    tokens: keys.verifier(),
    tracer: tracing.tracer,
    ...options,
  });
  return fixture;
}

/** One guarded server per connection (an SDK server serves one), all recording into one log. */
function guardedServers(): { next: () => McpServer; executions: Execution[] } {
  const executions: Execution[] = [];
  return {
    executions,
    next: () => {
      const { server } = filesystemServer({ record: (execution) => executions.push(execution) });
      return guardMcpServer(server, {
        server: "filesystem",
        client: pdp,
        tokens: keys.verifier(),
        tracer: tracing.tracer,
      });
    },
  };
}

/** A plain SDK client, with no client-side guard, whose every request carries a token for `chain`. */
function clientFor(server: McpServer | Server, chain: Delegation, audience = "filesystem"): Promise<Client> {
  return connectInMemory(server, (transport) =>
    delegationTokenTransport(transport, { signer: keys.signer, audience, delegation: chain }),
  );
}

async function rejection(attempt: Promise<unknown>): Promise<McpError & { data: { hopguard: McpRefusal } }> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, "expected the request to be refused").toBeInstanceOf(McpError);
  return error as McpError & { data: { hopguard: McpRefusal } };
}

function refusalOf(result: unknown): { text: string; refusal: McpRefusal } {
  const { isError, content, _meta } = result as CallToolResult;
  expect(isError).toBe(true);
  return {
    text: content.map((part) => (part.type === "text" ? part.text : "")).join(""),
    refusal: _meta?.["hopguard.dev/refusal"] as McpRefusal,
  };
}

const ran = (executions: readonly Execution[]) => executions.map((execution) => execution.what);

describe("guardMcpServer: each chain sees only what every hop may use", () => {
  test.each([
    {
      chain: "alice" as const,
      tools: ["read_file", "write_file"],
      resources: ["alice-notes", "runbook"],
      templates: ["workspace-file"],
      prompts: ["summarize_file", "code_review"],
    },
    {
      chain: "bob" as const,
      tools: ["read_file"],
      resources: ["bob-pipeline", "playbook"],
      templates: ["workspace-file"],
      prompts: ["summarize_file", "sales_pitch"],
    },
    {
      chain: "planner" as const,
      tools: ["read_file"],
      resources: ["alice-notes", "runbook"],
      templates: ["workspace-file"],
      prompts: ["summarize_file", "code_review"],
    },
    {
      chain: "researcher" as const,
      tools: ["read_file"],
      resources: ["alice-notes"],
      templates: [],
      prompts: [],
    },
    {
      chain: "bobScribe" as const,
      tools: ["read_file"],
      resources: ["bob-pipeline", "playbook"],
      templates: ["workspace-file"],
      prompts: ["summarize_file"],
    },
  ])("$chain lists $tools, $resources, $templates and $prompts", async ({ chain, ...expected }) => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains[chain]);

    expect((await client.listTools()).tools.map((tool) => tool.name)).toEqual(expected.tools);
    expect((await client.listResources()).resources.map((resource) => resource.name)).toEqual(expected.resources);
    expect((await client.listResourceTemplates()).resourceTemplates.map((template) => template.name)).toEqual(
      expected.templates,
    );
    expect((await client.listPrompts()).prompts.map((prompt) => prompt.name)).toEqual(expected.prompts);
    expect(executions).toEqual([]);
    // One listing decision per list, each for this chain.
    const listings = tracing.spans().filter((span) => span.name === SpanNames.listTools);
    expect(listings).toHaveLength(4);
    for (const span of listings) expect(span.attributes[SpanAttributes.chain]).toEqual([...chains[chain].chain]);
    await client.close();
  });
});

describe("guardMcpServer: tools/call", () => {
  test("an allowed call runs with the arguments decided on, for the token's chain, without seeing the token", async () => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.planner);

    const result = await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });

    expect(result.isError).toBeFalsy();
    expect(executions).toEqual([
      {
        what: "read_file",
        arguments: { path: "/workspace/alice/notes.md" },
        chain: ["alice", "planner"],
        meta: expect.not.objectContaining({ "hopguard.dev/delegation": expect.anything() }),
      },
    ]);
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.attributes).toMatchObject({
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.server]: "filesystem",
      [SpanAttributes.toolName]: "read_file",
      [SpanAttributes.chain]: ["alice", "planner"],
    });
    await client.close();
  });

  test("a denied call never reaches the tool: the model reads why, programs read _meta", async () => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.bob);

    const { text, refusal } = refusalOf(
      await client.callTool({ name: "write_file", arguments: { path: "/workspace/bob/a.md", content: "x" } }),
    );

    expect(executions).toEqual([]);
    expect(text).toMatch(/^hopguard refused filesystem\/write_file: denied by user "bob" \(hop 0 of bob\)/);
    expect(refusal).toEqual({ deniedBy: "bob", reason: expect.stringContaining('denied by user "bob"') });
    expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "bob",
    });
    await client.close();
  });

  test("with onDenied: 'error' a denied call is a JSON-RPC error, InvalidParams unless another code is set", async () => {
    for (const [errorCode, expected] of [
      [undefined, ErrorCode.InvalidParams],
      [-32010, -32010],
    ] as const) {
      const { server, executions } = guarded({ onDenied: "error", errorCode });
      const client = await clientFor(server, chains.bob);
      const error = await rejection(
        client.callTool({ name: "write_file", arguments: { path: "/workspace/bob/a.md", content: "x" } }),
      );
      expect(error.code).toBe(expected);
      expect(error.message).toContain('hopguard refused tools/call filesystem/write_file: denied by user "bob"');
      expect(error.data.hopguard).toMatchObject({ deniedBy: "bob" });
      expect(executions).toEqual([]);
      await client.close();
    }
  });

  test("the policy judges the server's own annotations, never the request's", async () => {
    // The notes policy lets agents call only tools the server declares harmless.
    const { server, executions } = guarded({ server: "notes", tokens: keys.verifier({ audience: "notes" }) });
    const client = await clientFor(server, chains.aliceScribe, "notes");

    const refused = await client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/a.md", content: "x" },
      _meta: { annotations: { readOnlyHint: true } },
    });
    const allowed = await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/a.md" } });

    expect(refusalOf(refused).refusal.deniedBy).toBe("scribe");
    expect(allowed.isError).toBeFalsy();
    expect(ran(executions)).toEqual(["read_file"]);
    const [write, read] = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(write?.attributes[SpanAttributes.decision]).toBe("deny");
    expect(read?.attributes[SpanAttributes.decision]).toBe("allow");
    await client.close();
  });

  test("a tool registered after connect is guarded, and listed only to those who may call it", async () => {
    // Handlers installed by the constructor, before the guard; tools added once clients are connected.
    const { server, executions } = filesystemServer({ capabilities: true });
    guardMcpServer(server, { server: "filesystem", client: pdp, tokens: keys.verifier(), tracer: tracing.tracer });
    const client = await clientFor(server, chains.alice);
    const run = (name: string) => async () => {
      executions.push({ what: name, meta: undefined, chain: undefined });
      return { content: [{ type: "text" as const, text: name }] };
    };
    server.registerTool(
      "list_allowed_directories",
      { annotations: { readOnlyHint: true } },
      run("list_allowed_directories"),
    );
    server.registerTool("delete_file", { inputSchema: { path: z.string() } }, run("delete_file"));

    const listed = (await client.listTools()).tools.map((tool) => tool.name);
    const allowed = await client.callTool({ name: "list_allowed_directories", arguments: {} });
    const denied = await client.callTool({ name: "delete_file", arguments: { path: "/workspace/alice/a.md" } });

    expect(listed).toEqual(["read_file", "write_file", "list_allowed_directories"]);
    expect(allowed.isError).toBeFalsy();
    expect(refusalOf(denied).text).toContain(
      'denied by user "alice" (hop 0 of alice): may not call filesystem/delete_file',
    );
    expect(ran(executions)).toEqual(["list_allowed_directories"]);
    await client.close();
  });

  test("handlers the McpServer installs after the guard (its first tool) are guarded", async () => {
    const server = new McpServer({ name: "filesystem", version: "0.0.0" });
    guardMcpServer(server, { server: "filesystem", client: pdp, tokens: keys.verifier(), tracer: tracing.tracer });
    const executed: string[] = [];
    server.registerTool("write_file", { inputSchema: { path: z.string(), content: z.string() } }, async () => {
      executed.push("write_file");
      return { content: [] };
    });
    const client = await clientFor(server, chains.bob);

    expect((await client.listTools()).tools).toEqual([]);
    refusalOf(await client.callTool({ name: "write_file", arguments: { path: "/workspace/bob/a.md", content: "x" } }));
    expect(executed).toEqual([]);
    await client.close();
  });
});

describe("guardMcpServer: resources/read", () => {
  test("a chain reads what it may; another's file is a JSON-RPC error and its handler never runs", async () => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.bob);

    const own = (await client.readResource({ uri: "file:///workspace/bob/pipeline.md" })) as ReadResourceResult;
    const error = await rejection(client.readResource({ uri: "file:///workspace/alice/notes.md" }));

    expect(own.contents[0]).toMatchObject({ text: "the text of bob-pipeline" });
    expect(error.code).toBe(ErrorCode.InvalidParams);
    expect(error.message).toContain("hopguard refused resources/read of file:///workspace/alice/notes.md");
    expect(error.data.hopguard).toEqual({ deniedBy: "bob", reason: expect.stringContaining('denied by user "bob"') });
    expect(ran(executions)).toEqual(["read file:///workspace/bob/pipeline.md"]);
    const [, denied] = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(denied?.attributes).toMatchObject({
      [SpanAttributes.server]: "filesystem::resource",
      [SpanAttributes.toolName]: "file:///workspace/alice/notes.md",
      [SpanAttributes.decision]: "deny",
    });
    await client.close();
  });

  test.each([
    "file:///workspace/alice/../bob/pipeline.md",
    "file:///workspace/alice/%2e%2e/bob/pipeline.md",
    "file:///workspace/alice/./../bob/pipeline.md",
  ])("%s is judged as the file it reads: bob's, refused to alice", async (uri) => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.alice);

    const error = await rejection(client.readResource({ uri }));

    expect(error.data.hopguard.deniedBy).toBe("alice");
    expect(executions).toEqual([]);
    expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes[SpanAttributes.toolName]).toBe(
      "file:///workspace/bob/pipeline.md",
    );
    await client.close();
  });

  test("a templated read is decided with its template, and the handler gets the URI that was decided on", async () => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.alice);

    await client.readResource({ uri: "file:///workspace/alice/sub/../todo.md" });

    expect(executions).toEqual([
      expect.objectContaining({ what: "read file:///workspace/alice/todo.md", chain: ["alice"] }),
    ]);
    await client.close();
  });

  test("a delegation's scope limits its resources: the researcher may read alice's files, not the runbook", async () => {
    const { server, executions } = guarded();
    const client = await clientFor(server, chains.researcher);

    await client.readResource({ uri: "file:///workspace/alice/notes.md" });
    const error = await rejection(client.readResource({ uri: "docs://engineering/runbook" }));

    expect(error.data.hopguard).toMatchObject({ deniedBy: "scope" });
    expect(error.data.hopguard.reason).toContain('outside agent "researcher"\'s delegated tools');
    expect(ran(executions)).toEqual(["read file:///workspace/alice/notes.md"]);
    await client.close();
  });
});

describe("guardMcpServer: prompts/get", () => {
  test("a prompt is got only with arguments every hop allows, and only by whom it is for", async () => {
    const { next, executions } = guardedServers();
    const alices = await clientFor(next(), chains.alice);
    const bobsScribe = await clientFor(next(), chains.bobScribe);

    const summary = (await alices.getPrompt({
      name: "summarize_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as GetPromptResult;
    const climbOut = await rejection(
      alices.getPrompt({ name: "summarize_file", arguments: { path: "/workspace/alice/../bob/pipeline.md" } }),
    );
    const pitch = await rejection(bobsScribe.getPrompt({ name: "sales_pitch", arguments: { customer: "acme" } }));

    expect(summary.messages[0]?.content).toEqual({ type: "text", text: "Summarize /workspace/alice/notes.md" });
    expect(climbOut.data.hopguard.deniedBy).toBe("alice");
    expect(pitch.message).toContain("hopguard refused prompts/get of sales_pitch");
    expect(pitch.data.hopguard.deniedBy).toBe("scribe");
    expect(executions).toEqual([
      expect.objectContaining({
        what: "prompt summarize_file",
        arguments: { path: "/workspace/alice/notes.md" },
        chain: ["alice"],
      }),
    ]);
    await alices.close();
    await bobsScribe.close();
  });
});

describe("guardMcpServer: completion/complete", () => {
  test("arguments of a prompt or template the chain may not see are not completed", async () => {
    const { next, executions } = guardedServers();
    const bobs = await clientFor(next(), chains.bob);
    const alices = await clientFor(next(), chains.alice);
    const researchers = await clientFor(next(), chains.researcher);
    const customers = {
      ref: { type: "ref/prompt" as const, name: "sales_pitch" },
      argument: { name: "customer", value: "a" },
    };
    const files = {
      ref: { type: "ref/resource" as const, uri: "file:///workspace/{user}/{file}" },
      argument: { name: "file", value: "" },
    };

    const bobsCustomers = await bobs.complete(customers);
    const alicesCustomers = await rejection(alices.complete(customers));
    const alicesFiles = await alices.complete(files);
    const researchersFiles = await rejection(researchers.complete(files));

    expect(bobsCustomers.completion.values).toEqual(["acme"]);
    expect(alicesFiles.completion.values).toEqual(["notes.md", "todo.md", "salaries.csv"]);
    expect(alicesCustomers.message).toContain("hopguard refused completion/complete of sales_pitch");
    expect(alicesCustomers.data.hopguard.reason).toContain("is not one alice may see");
    expect(researchersFiles.data.hopguard.reason).toContain("is not one alice → planner → researcher may see");
    expect(ran(executions)).toEqual(["complete customer", "complete file"]);
    await Promise.all([bobs.close(), alices.close(), researchers.close()]);
  });
});

describe("guardMcpServer: the server decides on its own", () => {
  test("a client with no guard and no token gets nothing: no tool, no resource, no prompt", async () => {
    const { server, executions } = guarded();
    const client = await connectInMemory(server);

    const call = refusalOf(await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/a.md" } }));
    const list = await rejection(client.listTools());
    const read = await rejection(client.readResource({ uri: "file:///workspace/alice/notes.md" }));
    const prompt = await rejection(client.getPrompt({ name: "code_review" }));

    expect(call.refusal).toMatchObject({ code: "token_missing", deniedBy: "token_missing" });
    for (const error of [list, read, prompt]) expect(error.data.hopguard.code).toBe("token_missing");
    expect(executions).toEqual([]);
    await client.close();
  });

  test("a server policy stricter than the client's wins: the client guard allows, the server refuses", async () => {
    // The client's policy (filesystem) lets alice's scribe write in her workspace; this server's (notes) lets agents
    // call only tools it declares harmless.
    const { server, executions } = guarded({ server: "notes", tokens: keys.verifier({ audience: "notes" }) });
    const client = await clientFor(server, chains.aliceScribe, "notes");
    const clientSide = createGuard({ client: pdp, tracer: tracing.tracer });
    const scribeOfAlice = await clientSide.forUser(alice).delegate(scribe);
    const filesystem = guardMcpClient(client, { server: "filesystem", delegation: scribeOfAlice });

    const result = await filesystem.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/a.md", content: "x" },
    });

    const { text } = refusalOf(result);
    expect(text).toMatch(/^hopguard refused notes\/write_file: denied by agent "scribe"/);
    expect(executions).toEqual([]);
    const decisions = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(
      decisions.map((span) => [span.attributes[SpanAttributes.server], span.attributes[SpanAttributes.decision]]),
    ).toEqual([
      ["filesystem", "allow"],
      ["notes", "deny"],
    ]);
    await client.close();
  });

  test("without a token, the authenticated caller's user acts directly", async () => {
    const { server, executions } = guarded({
      user: (authInfo) => (authInfo.clientId === "bob" ? bob : undefined),
    });
    const authInfo = { token: "opaque", clientId: "bob", scopes: [] };
    const client = await connectInMemory(server, (transport) => presentingTransport(transport, () => ({ authInfo })));

    await client.readResource({ uri: "file:///workspace/bob/pipeline.md" });
    const refused = await rejection(client.readResource({ uri: "file:///workspace/alice/notes.md" }));

    expect(refused.data.hopguard.deniedBy).toBe("bob");
    expect(executions).toEqual([
      expect.objectContaining({ what: "read file:///workspace/bob/pipeline.md", chain: ["bob"] }),
    ]);
    await client.close();
  });
});

describe("guardMcpServer: trace context", () => {
  test("a request's _meta.traceparent makes the server's decision a child of the caller's span", async () => {
    const { server } = guarded();
    const token = await chains.alice.toToken(keys.signer, { audience: "filesystem" });
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const client = await connectInMemory(server, (transport) =>
      presentingTransport(transport, () => ({ token, traceparent })),
    );

    await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });

    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(span.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(span.parentSpanContext?.isRemote).toBe(true);
    await client.close();
  });

  test("a malformed traceparent is ignored: the decision starts a trace of its own", async () => {
    const { server } = guarded();
    const token = await chains.alice.toToken(keys.signer, { audience: "filesystem" });
    const client = await connectInMemory(server, (transport) =>
      presentingTransport(transport, () => ({
        token,
        traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      })),
    );

    await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });

    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.spanContext().traceId).not.toBe("00000000000000000000000000000000");
    await client.close();
  });
});

describe("guardMcpServer: installing", () => {
  test("refuses what is not an SDK server it knows, a server guarded twice, and options that name no one", () => {
    const options = { server: "filesystem", client: pdp, tokens: keys.verifier() };
    expect(() => guardMcpServer({ setRequestHandler() {} }, options)).toThrow(/refusing to run unguarded/);
    const drifted = new McpServer({ name: "x", version: "0" });
    // An SDK whose dispatcher reads some other map: a guard on this one would guard nothing.
    Object.defineProperty(drifted.server, "_onrequest", { value: () => undefined });
    expect(() => guardMcpServer(drifted, options)).toThrow(/refusing to run unguarded/);
    const server = new McpServer({ name: "x", version: "0" });
    guardMcpServer(server, options);
    expect(() => guardMcpServer(server, options)).toThrow(/already guarded/);
    expect(() =>
      guardMcpServer(new McpServer({ name: "x", version: "0" }), { server: "filesystem", client: pdp }),
    ).toThrow(/tokens.*user/);
    expect(() => guardMcpServer(new McpServer({ name: "x", version: "0" }), { ...options, server: "a::b" })).toThrow(
      /options.server/,
    );
  });

  test("a low-level Server: handlers set after the guard, and the fallback handler, are guarded", async () => {
    const executed: string[] = [];
    const lowLevel = () => {
      const server = new Server({ name: "filesystem", version: "0.0.0" }, { capabilities: { tools: {} } });
      guardMcpServer(server, { server: "filesystem", client: pdp, tokens: keys.verifier(), tracer: tracing.tracer });
      const tools = [
        { name: "read_file", inputSchema: { type: "object" as const }, annotations: { readOnlyHint: true } },
        { name: "write_file", inputSchema: { type: "object" as const }, annotations: { destructiveHint: true } },
      ];
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools }));
      server.setRequestHandler(CallToolRequestSchema, (request) => {
        executed.push(request.params.name);
        return { content: [] };
      });
      server.fallbackRequestHandler = async (request) => {
        executed.push(request.method);
        return {};
      };
      return server;
    };
    const bobs = await clientFor(lowLevel(), chains.bob);
    const anonymous = await connectInMemory(lowLevel());

    const listed = (await bobs.listTools()).tools.map((tool) => tool.name);
    await bobs.callTool({ name: "read_file", arguments: { path: "/workspace/bob/a.md" } });
    refusalOf(await bobs.callTool({ name: "write_file", arguments: { path: "/workspace/bob/a.md", content: "x" } }));
    await bobs.request({ method: "notes/custom", params: {} }, EmptyResultSchema);
    const custom = await rejection(anonymous.request({ method: "notes/custom", params: {} }, EmptyResultSchema));

    expect(listed).toEqual(["read_file"]);
    expect(executed).toEqual(["read_file", "notes/custom"]);
    expect(custom.data.hopguard.code).toBe("token_missing");
    await Promise.all([bobs.close(), anonymous.close()]);
  });

  test("a decision that needs a person's approval is refused on the server, and recorded as declined", async () => {
    const { server, executions } = guarded();
    server.registerTool("move_file", { inputSchema: { source: z.string(), destination: z.string() } }, async () => {
      executions.push({ what: "move_file", meta: undefined, chain: undefined });
      return { content: [] };
    });
    const client = await clientFor(server, chains.alice);

    const { refusal } = refusalOf(
      await client.callTool({
        name: "move_file",
        arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
      }),
    );

    expect(refusal).toMatchObject({ deniedBy: "approval" });
    expect(executions).toEqual([]);
    expect(onlySpan(tracing.spans(), SpanNames.approval).attributes[SpanAttributes.approval]).toBe("declined");
    expect(onlySpan(tracing.spans(), SpanNames.authorize).status.code).not.toBe(SpanStatusCode.ERROR);
    await client.close();
  });
});
