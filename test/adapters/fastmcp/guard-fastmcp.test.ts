import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type CallToolResult, McpError } from "@modelcontextprotocol/sdk/types.js";
import { FastMCP } from "fastmcp";
import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { guardFastMCP } from "../../../src/adapters/fastmcp/index.ts";
import { delegationTokenTransport, type McpRefusal } from "../../../src/adapters/mcp/index.ts";
import {
  type ActorInput,
  createGuard,
  type Delegation,
  InvalidInputError,
  SpanAttributes,
  SpanNames,
} from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { type TokenKeys, tokenKeys } from "../../support/token-keys.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";
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
const executions: Execution[] = [];
const record = (execution: Execution) => executions.push(execution);

let keys: TokenKeys;
let alicePlanner: Delegation;

beforeAll(async () => {
  keys = await tokenKeys();
  alicePlanner = await host.forUser(alice).delegate(planner);
});
beforeEach(() => {
  executions.length = 0;
  tracing.reset();
});

function newApp(): FastMCP<PersonAuth> {
  return new FastMCP<PersonAuth>({ name: "filesystem", version: "1.0.0", logger: quietLogger() });
}

function guarded(app: FastMCP<PersonAuth>): FastMCP<PersonAuth> {
  return guardFastMCP(app, {
    server: "filesystem",
    client: pdp,
    tokens: keys.verifier(),
    tracer: tracing.tracer,
    user: (auth) => auth.person,
  });
}

/** A session of `app` in memory, authenticated as `person` (what `authenticate` would have returned). */
async function connect(
  app: FastMCP<PersonAuth>,
  person: ActorInput | undefined,
  wrap: (transport: Transport) => Transport = (transport) => transport,
): Promise<Client> {
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await Promise.all([
    app.connect(serverTransport, person === undefined ? undefined : { person }),
    client.connect(wrap(clientTransport)),
  ]);
  return client;
}

const names = (items: readonly { name: string }[]) => items.map((item) => item.name);

describe("guardFastMCP: each session acts for its authenticate result", () => {
  test("alice and bob see different tools; bob's write is refused and never runs", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const alices = await connect(app, alice);
    const bobs = await connect(app, bob);

    const aliceTools = names((await alices.listTools()).tools);
    const bobTools = names((await bobs.listTools()).tools);
    const refused = (await bobs.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/plan.md", content: "x" },
    })) as CallToolResult;
    const written = (await alices.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/plan.md", content: "x" },
    })) as CallToolResult;

    expect(aliceTools).toEqual(["read_file", "write_file"]);
    expect(bobTools).toEqual(["read_file"]);
    expect(refused.isError).toBe(true);
    expect(refused._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "bob" } satisfies Partial<McpRefusal>);
    expect(written.isError).toBeFalsy();
    expect(executions).toEqual([expect.objectContaining({ what: "write_file", chain: ["alice"] })]);
    const decisions = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(
      decisions.map((span) => [span.attributes[SpanAttributes.chain], span.attributes[SpanAttributes.decision]]),
    ).toEqual([
      [["bob"], "deny"],
      [["alice"], "allow"],
    ]);
    await Promise.all([alices.close(), bobs.close()]);
  });

  test("resources, templates, prompts and completions: each user gets only their own", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const alices = await connect(app, alice);
    const bobs = await connect(app, bob);

    const aliceSees = names((await alices.listResources()).resources);
    const bobSees = names((await bobs.listResources()).resources);
    const read = await alices.readResource({ uri: "file:///workspace/alice/notes.md" });
    const refusedRead = await bobs.readResource({ uri: "file:///workspace/alice/notes.md" }).catch((error) => error);
    const refusedTemplate = await bobs
      .readResource({ uri: "file:///workspace/alice/salaries.csv" })
      .catch((error) => error);
    const alicePrompts = names((await alices.listPrompts()).prompts);
    const bobPrompts = names((await bobs.listPrompts()).prompts);
    const refusedPrompt = await bobs.getPrompt({ name: "code_review" }).catch((error) => error);
    const refusedCompletion = await alices
      .complete({ ref: { type: "ref/prompt", name: "sales_pitch" }, argument: { name: "customer", value: "a" } })
      .catch((error) => error);
    const completed = await bobs.complete({
      ref: { type: "ref/prompt", name: "sales_pitch" },
      argument: { name: "customer", value: "a" },
    });

    expect(aliceSees).toEqual(["alice-notes", "runbook"]);
    expect(bobSees).toEqual(["bob-pipeline", "playbook"]);
    expect(read.contents[0]).toMatchObject({ text: "the text of alice-notes" });
    for (const refused of [refusedRead, refusedTemplate, refusedPrompt, refusedCompletion]) {
      expect(refused).toBeInstanceOf(McpError);
      expect((refused as McpError).data).toHaveProperty("hopguard.reason");
    }
    expect((refusedRead as McpError).data).toMatchObject({ hopguard: { deniedBy: "bob" } });
    expect(alicePrompts).toEqual(["code_review"]);
    expect(bobPrompts).toEqual(["sales_pitch"]);
    expect(completed.completion.values).toEqual(["acme"]);
    expect(executions.map((execution) => execution.what)).toEqual([
      "read file:///workspace/alice/notes.md",
      "complete customer",
    ]);
    await Promise.all([alices.close(), bobs.close()]);
  });

  test("a tool added while sessions are open is guarded in every session", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record, { withWrite: false });
    const alices = await connect(app, alice);
    const bobs = await connect(app, bob);
    expect(names((await bobs.listTools()).tools)).toEqual(["read_file"]);

    app.addTool(writeFileTool(record)); // FastMCP re-installs every session's tool handlers
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
    expect(executions).toEqual([expect.objectContaining({ what: "write_file", chain: ["alice"] })]);
    await Promise.all([alices.close(), bobs.close()]);
  });

  test("a session without auth and without a token is refused everything", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const anonymous = await connect(app, undefined);

    const listed = await anonymous.listTools().catch((error) => error);
    const called = (await anonymous.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(listed).toBeInstanceOf(McpError);
    expect((listed as McpError).data).toMatchObject({ hopguard: { code: "token_missing" } });
    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_missing" });
    expect(executions).toEqual([]);
    await anonymous.close();
  });
});

describe("guardFastMCP: delegation tokens in _meta", () => {
  test("alice's planner acts through its token on alice's session: read only, in its chain", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const client = await connect(app, alice, (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );

    const tools = names((await client.listTools()).tools);
    await client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });
    const refused = (await client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/plan.md", content: "x" },
    })) as CallToolResult;

    expect(tools).toEqual(["read_file"]);
    expect(refused.isError).toBe(true);
    expect(refused._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "planner" });
    expect(executions).toEqual([expect.objectContaining({ what: "read_file", chain: ["alice", "planner"] })]);
    await client.close();
  });

  test("a tampered token is refused before anything runs: token_signature_invalid, with its span", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const tampered = (transport: Transport) =>
      delegationTokenTransport(transport, {
        signer: tamperingSigner(keys.signer),
        audience: "filesystem",
        delegation: alicePlanner,
      });
    const client = await connect(app, undefined, tampered);

    const called = (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;
    const read = await client.readResource({ uri: "file:///workspace/alice/notes.md" }).catch((error) => error);

    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_signature_invalid" });
    expect((read as McpError).data).toMatchObject({ hopguard: { code: "token_signature_invalid" } });
    expect(executions).toEqual([]);
    const spans = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(spans.length).toBeGreaterThanOrEqual(2);
    expect(spans.every((span) => span.attributes[SpanAttributes.errorType] === "token_signature_invalid")).toBe(true);
    await client.close();
  });

  test("alice's token on bob's session is refused: token_user_mismatch", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const client = await connect(app, bob, (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );

    const called = (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(called._meta?.["hopguard.dev/refusal"]).toMatchObject({ code: "token_user_mismatch" });
    expect(executions).toEqual([]);
    await client.close();
  });
});

describe("guardFastMCP: nothing runs unchecked", () => {
  test("requests made before FastMCP announces an app.connect session wait for its guard", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);
    const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
    const client = new Client({ name: "hopguard-test", version: "0.0.0" });
    const connecting = app.connect(serverTransport, { person: bob });
    await client.connect(clientTransport);

    // FastMCP is still waiting to see the client's capabilities: the session is not announced yet.
    const [listed, refused] = await Promise.all([
      client.listTools(),
      client.callTool({ name: "write_file", arguments: { path: "/workspace/bob/plan.md", content: "x" } }),
    ]);
    await connecting;

    expect(names(listed.tools)).toEqual(["read_file"]);
    expect((refused as CallToolResult).isError).toBe(true);
    expect(executions).toEqual([]);
    await client.close();
  });

  test("tools registered before guardFastMCP are still decided by the session guard", async () => {
    const app = newApp();
    registerFilesystem(app, record);
    guarded(app);
    const bobs = await connect(app, bob);

    const tools = names((await bobs.listTools()).tools);
    const refused = (await bobs.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/plan.md", content: "x" },
    })) as CallToolResult;

    expect(tools).toEqual(["read_file"]);
    expect(refused.isError).toBe(true);
    expect(executions).toEqual([]);
    await bobs.close();
  });

  test("the app's own code runs only inside a request a session guard admitted", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);

    // FastMCP's embedded() runs a resource's load outside any request: no session guard decided anything.
    const embedded = await app.embedded("file:///workspace/alice/notes.md").catch((error) => error);

    expect(embedded).toBeInstanceOf(Error);
    expect(String(embedded)).toMatch(/no guarded session admitted it/);
    expect(executions).toEqual([]);
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.attributes[SpanAttributes.errorType]).toBe("authorization_failed");
  });

  test("it refuses an app that already serves sessions, and a second guard", async () => {
    const running = newApp();
    registerFilesystem(running, record);
    const client = await connect(running, alice);
    expect(() => guarded(running)).toThrow(InvalidInputError);
    expect(() => guarded(running)).toThrow(/already serves sessions/);
    await client.close();

    const app = guarded(newApp());
    expect(() => guarded(app)).toThrow(/already guarded/);
  });

  test("it refuses bad options at once, not at the first session", () => {
    expect(() => guardFastMCP(newApp(), { server: "filesystem", client: pdp })).toThrow(InvalidInputError);
    expect(() => guardFastMCP(newApp(), { server: "file/system", client: pdp, tokens: keys.verifier() })).toThrow(
      /options.server/,
    );
    expect(() => guardFastMCP({} as FastMCP, { server: "filesystem", client: pdp, tokens: keys.verifier() })).toThrow(
      /must be a FastMCP app/,
    );
  });

  test("start() refuses stateless HTTP, whose sessions FastMCP never announces", async () => {
    const app = guarded(newApp());
    registerFilesystem(app, record);

    const started = app
      .start({ transportType: "httpStream", httpStream: { port: 1, host: "127.0.0.1", stateless: true } })
      .catch((error) => error);

    expect(await started).toBeInstanceOf(InvalidInputError);
    expect(String(await started)).toMatch(/stateless/);
    expect(app.serverState).toBe("stopped");
  });
});
