import { createServer } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type CallToolResult, McpError } from "@modelcontextprotocol/sdk/types.js";
import { FastMCP } from "fastmcp";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { type GuardFastMCPOptions, guardFastMCP } from "../../../src/adapters/fastmcp/index.ts";
import { delegationTokenTransport, type McpRefusal } from "../../../src/adapters/mcp/index.ts";
import { type ActorInput, createGuard, type Delegation, SpanAttributes, SpanNames } from "../../../src/index.ts";
import { startLocalPdp } from "../../../src/local-pdp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { type TokenKeys, tokenKeys } from "../../support/token-keys.ts";
import { memoryTracing } from "../../support/tracing.ts";
import { alice, bob, planner } from "../../support/users.ts";
import {
  type Execution,
  type PersonAuth,
  quietLogger,
  registerFilesystem,
  tamperingSigner,
  writeFileTool,
} from "./filesystem-app.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
const host = createGuard({ client: pdp });
const people: Record<string, ActorInput> = { "alice-key": alice, "bob-key": bob };
const executions: Execution[] = [];
const record = (execution: Execution) => executions.push(execution);

let keys: TokenKeys;
let alicePlanner: Delegation;
let served: Served;

interface Served {
  readonly app: FastMCP<PersonAuth>;
  readonly url: URL;
}

/** A free loopback port: FastMCP listens where it is told and does not say where it ended up. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** A guarded FastMCP "filesystem" app on a loopback port, its users authenticated by bearer key. */
async function serve(options: Partial<GuardFastMCPOptions<PersonAuth>> = {}): Promise<Served> {
  const app = guardFastMCP(
    new FastMCP<PersonAuth>({
      name: "filesystem",
      version: "1.0.0",
      logger: quietLogger(),
      // FastMCP's own idiom: authenticate each HTTP request; what it returns is the session's auth.
      authenticate: async (request) => {
        const person = people[/^Bearer (\S+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? ""];
        return person === undefined ? undefined : { person };
      },
    }),
    {
      server: "filesystem",
      client: pdp,
      tokens: keys.verifier(),
      tracer: tracing.tracer,
      user: (auth) => auth.person,
      ...options,
    },
  );
  registerFilesystem(app, record);
  const port = await freePort();
  await app.start({ transportType: "httpStream", httpStream: { port, host: "127.0.0.1" } });
  return { app, url: new URL(`http://127.0.0.1:${port}/mcp`) };
}

async function connect(
  url: URL,
  bearer: string | undefined,
  wrap: (transport: Transport) => Transport = (transport) => transport,
): Promise<Client> {
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  const headers: Record<string, string> = bearer === undefined ? {} : { Authorization: `Bearer ${bearer}` };
  await client.connect(wrap(new StreamableHTTPClientTransport(url, { requestInit: { headers } })));
  return client;
}

const names = (items: readonly { name: string }[]) => items.map((item) => item.name);
const planners = (transport: Transport) =>
  delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner });

beforeAll(async () => {
  keys = await tokenKeys();
  alicePlanner = await host.forUser(alice).delegate(planner);
  served = await serve();
});
afterAll(() => served?.app.stop());
beforeEach(() => {
  executions.length = 0;
  tracing.reset();
});

describe("guardFastMCP over Streamable HTTP (FastMCP's own server, on loopback)", () => {
  test("alice and bob, authenticated by FastMCP, see different tools; bob's write never runs", async () => {
    const alices = await connect(served.url, "alice-key");
    const bobs = await connect(served.url, "bob-key");

    const aliceTools = names((await alices.listTools()).tools);
    const bobTools = names((await bobs.listTools()).tools);
    const refused = (await bobs.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/plan.md", content: "x" },
    })) as CallToolResult;
    await alices.callTool({ name: "write_file", arguments: { path: "/workspace/alice/plan.md", content: "x" } });

    expect(aliceTools).toEqual(["read_file", "write_file"]);
    expect(bobTools).toEqual(["read_file"]);
    expect(refused.isError).toBe(true);
    expect(refused._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "bob" } satisfies Partial<McpRefusal>);
    expect(executions).toEqual([expect.objectContaining({ what: "write_file", chain: ["alice"] })]);
    const denial = tracing
      .spans()
      .find((span) => span.name === SpanNames.authorize && span.attributes[SpanAttributes.decision] === "deny");
    expect(denial?.attributes[SpanAttributes.chain]).toEqual(["bob"]);
    expect(denial?.attributes[SpanAttributes.toolName]).toBe("write_file");
    await Promise.all([alices.close(), bobs.close()]);
  });

  test("resources and prompts: bob reads and gets only his own", async () => {
    const bobs = await connect(served.url, "bob-key");

    const resources = names((await bobs.listResources()).resources);
    const prompts = names((await bobs.listPrompts()).prompts);
    const own = await bobs.readResource({ uri: "file:///workspace/bob/pipeline.md" });
    const refusedRead = await bobs.readResource({ uri: "file:///workspace/alice/notes.md" }).catch((error) => error);
    const refusedPrompt = await bobs.getPrompt({ name: "code_review" }).catch((error) => error);
    const pitch = await bobs.getPrompt({ name: "sales_pitch", arguments: { customer: "acme" } });

    expect(resources).toEqual(["bob-pipeline", "playbook"]);
    expect(prompts).toEqual(["sales_pitch"]);
    expect(own.contents[0]).toMatchObject({ text: "the text of bob-pipeline" });
    expect((refusedRead as McpError).data).toMatchObject({ hopguard: { deniedBy: "bob" } });
    expect(refusedPrompt).toBeInstanceOf(McpError);
    expect(pitch.messages[0]?.content).toMatchObject({ text: "Pitch to acme" });
    expect(executions.map((execution) => execution.what)).toEqual([
      "read file:///workspace/bob/pipeline.md",
      "prompt sales_pitch",
    ]);
    await bobs.close();
  });

  test("a tool added while HTTP sessions are open is guarded in each of them", async () => {
    const local = await serve();
    local.app.removeTool("write_file");
    const bobs = await connect(local.url, "bob-key");
    const alices = await connect(local.url, "alice-key");

    local.app.addTool(writeFileTool(record));
    const bobTools = names((await bobs.listTools()).tools);
    const refused = (await bobs.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/plan.md", content: "x" },
    })) as CallToolResult;
    await alices.callTool({ name: "write_file", arguments: { path: "/workspace/alice/plan.md", content: "x" } });

    expect(bobTools).toEqual(["read_file"]);
    expect(refused.isError).toBe(true);
    expect(executions).toEqual([expect.objectContaining({ what: "write_file", chain: ["alice"] })]);
    await Promise.all([alices.close(), bobs.close()]);
    await local.app.stop();
  });

  test("an unknown bearer never reaches MCP: FastMCP's authenticate answers 401", async () => {
    await expect(connect(served.url, "mallory-key")).rejects.toThrow();
    await expect(connect(served.url, undefined)).rejects.toThrow();
    expect(executions).toEqual([]);
  });
});

describe("guardFastMCP over HTTP: delegation tokens", () => {
  test("alice's planner, through its token on alice's connection: lists and reads as alice → planner", async () => {
    const client = await connect(served.url, "alice-key", planners);

    const tools = names((await client.listTools()).tools);
    await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });
    const refused = (await client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/plan.md", content: "x" },
    })) as CallToolResult;

    expect(tools).toEqual(["read_file"]);
    expect(refused._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "planner" });
    expect(executions).toEqual([expect.objectContaining({ what: "read_file", chain: ["alice", "planner"] })]);
    await client.close();
  });

  test("alice's token on bob's connection is refused: token_user_mismatch", async () => {
    const client = await connect(served.url, "bob-key", planners);

    const called = (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_user_mismatch" });
    expect(executions).toEqual([]);
    await client.close();
  });

  test("a tampered token (the planner made a writer) is refused, the write never runs", async () => {
    const client = await connect(served.url, "alice-key", (transport) =>
      delegationTokenTransport(transport, {
        signer: tamperingSigner(keys.signer),
        audience: "filesystem",
        delegation: alicePlanner,
      }),
    );

    const called = (await client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/plan.md", content: "x" },
    })) as CallToolResult;

    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_signature_invalid" });
    expect(executions).toEqual([]);
    await client.close();
  });

  test("a token that does not verify (signed for another server) is refused, the tool never runs", async () => {
    const client = await connect(served.url, "alice-key", (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "memory", delegation: alicePlanner }),
    );

    const called = (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_audience_mismatch" });
    expect(executions).toEqual([]);
    await client.close();
  });
});

describe("guardFastMCP over HTTP: failing closed", () => {
  test("the PDP stopped mid-session: the next call is refused and never runs", async () => {
    const ownPdp = await startLocalPdp();
    const local = await serve({ client: ownPdp.client, timeoutMs: 2000 });
    const alices = await connect(local.url, "alice-key");
    try {
      await alices.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });
      await ownPdp.stop();

      const after = (await alices.callTool({
        name: "read_file",
        arguments: { path: "/workspace/alice/todo.md" },
      })) as CallToolResult;

      expect(after.isError).toBe(true);
      expect(after._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "pdp_unavailable" });
      expect(executions).toEqual([
        expect.objectContaining({ what: "read_file", arguments: { path: "/workspace/alice/notes.md" } }),
      ]);
    } finally {
      await alices.close();
      await local.app.stop();
      await ownPdp.stop();
    }
  });

  test("FastMCP's SSE endpoint: its sessions are guarded, and act only on a delegation token", async () => {
    const sseUrl = new URL("/sse", served.url);
    const headers = { Authorization: "Bearer alice-key" };
    const sseTransport = () =>
      new SSEClientTransport(sseUrl, { requestInit: { headers }, eventSourceInit: { fetch: withHeaders(headers) } });
    // FastMCP announces an SSE session only after its client initialized: wait for both announcements.
    const announced = connectEvents(served.app, 2);
    const sse = new Client({ name: "hopguard-test", version: "0.0.0" });
    await sse.connect(sseTransport());
    const withToken = new Client({ name: "hopguard-test", version: "0.0.0" });
    await withToken.connect(planners(sseTransport()));
    await announced;

    const refused = (await sse.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;
    await withToken.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });

    expect(refused.isError).toBe(true);
    expect(executions).toEqual([expect.objectContaining({ what: "read_file", chain: ["alice", "planner"] })]);
    await Promise.all([sse.close(), withToken.close()]);
  });
});

function connectEvents(app: FastMCP<PersonAuth>, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    app.on("connect", () => {
      seen += 1;
      if (seen === count) resolve();
    });
  });
}

function withHeaders(headers: Record<string, string>): typeof fetch {
  return (input, init) =>
    fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } });
}
