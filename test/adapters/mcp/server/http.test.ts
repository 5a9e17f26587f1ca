import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type CallToolResult, McpError } from "@modelcontextprotocol/sdk/types.js";
import { context, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { delegationTokenTransport, guardMcpServer, type McpRefusal } from "../../../../src/adapters/mcp/index.ts";
import { type ActorInput, createGuard, type Delegation, SpanAttributes, SpanNames } from "../../../../src/index.ts";
import { type Execution, filesystemServer } from "../../../support/guarded-server.ts";
import { type HttpMcp, startHttpMcp } from "../../../support/http-mcp.ts";
import { sharedPdpClient } from "../../../support/pdp.ts";
import { type TokenKeys, tokenKeys } from "../../../support/token-keys.ts";
import { memoryTracing, onlySpan } from "../../../support/tracing.ts";
import { alice, bob, planner } from "../../../support/users.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
const host = createGuard({ client: pdp });
const people: Record<string, ActorInput> = { "alice-key": alice, "bob-key": bob };
const executions: Execution[] = [];

let keys: TokenKeys;
let http: HttpMcp;
let alicePlanner: Delegation;

beforeAll(async () => {
  keys = await tokenKeys();
  alicePlanner = await host.forUser(alice).delegate(planner);
  http = await startHttpMcp({
    // What a real deployment's bearer auth does: verify the token, say who it belongs to.
    authenticate: (bearer): AuthInfo | undefined => {
      const person = people[bearer];
      return person === undefined
        ? undefined
        : { token: bearer, clientId: person.id, scopes: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 };
    },
    makeServer: () => {
      const { server } = filesystemServer({ record: (execution) => executions.push(execution) });
      return guardMcpServer(server, {
        server: "filesystem",
        client: pdp,
        tokens: keys.verifier(),
        tracer: tracing.tracer,
        user: (authInfo) => Object.values(people).find((person) => person.id === authInfo.clientId),
      });
    },
  });
});
afterAll(() => http?.close());
beforeEach(() => {
  executions.length = 0;
  tracing.reset();
});

async function connect(bearer: string | undefined, wrap: (transport: Transport) => Transport = (t) => t) {
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  const headers: Record<string, string> = bearer === undefined ? {} : { Authorization: `Bearer ${bearer}` };
  await client.connect(wrap(new StreamableHTTPClientTransport(http.url, { requestInit: { headers } })));
  return client;
}

describe("guardMcpServer over Streamable HTTP with bearer auth", () => {
  test("the bearer's user acts for themselves: alice and bob each see and read only their own", async () => {
    const alices = await connect("alice-key");
    const bobs = await connect("bob-key");

    const aliceSees = (await alices.listResources()).resources.map((resource) => resource.name);
    const bobSees = (await bobs.listResources()).resources.map((resource) => resource.name);
    await alices.readResource({ uri: "file:///workspace/alice/notes.md" });
    const refused = await bobs.readResource({ uri: "file:///workspace/alice/notes.md" }).catch((error) => error);
    const write = (await bobs.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/a.md", content: "x" },
    })) as CallToolResult;

    expect(aliceSees).toEqual(["alice-notes", "runbook"]);
    expect(bobSees).toEqual(["bob-pipeline", "playbook"]);
    expect(refused).toBeInstanceOf(McpError);
    expect((refused as McpError).data).toMatchObject({ hopguard: { deniedBy: "bob" } });
    expect(write.isError).toBe(true);
    expect(executions).toEqual([
      expect.objectContaining({ what: "read file:///workspace/alice/notes.md", chain: ["alice"] }),
    ]);
    await Promise.all([alices.close(), bobs.close()]);
  });

  test("without a bearer token nothing reaches MCP at all", async () => {
    const before = http.unauthorized;
    await expect(connect(undefined)).rejects.toThrow();
    await expect(connect("mallory-key")).rejects.toThrow();
    expect(http.unauthorized).toBeGreaterThanOrEqual(before + 2);
    expect(executions).toEqual([]);
  });

  test("a delegation token on alice's connection acts for her planner, in the caller's trace", async () => {
    const client = await connect("alice-key", (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );
    const callerSpan = tracing.tracer.startSpan("agent turn");
    const caller = callerSpan.spanContext();

    // The token transport stamps the active span's traceparent on each request.
    const listed = await context.with(trace.setSpan(context.active(), callerSpan), () => client.listTools());
    await context.with(trace.setSpan(context.active(), callerSpan), () =>
      client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } }),
    );
    callerSpan.end();

    expect(listed.tools.map((tool) => tool.name)).toEqual(["read_file"]);
    expect(executions).toEqual([expect.objectContaining({ what: "read_file", chain: ["alice", "planner"] })]);
    const decision = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(decision.attributes[SpanAttributes.chain]).toEqual(["alice", "planner"]);
    expect(decision.spanContext().traceId).toBe(caller.traceId);
    expect(decision.parentSpanContext).toMatchObject({ spanId: caller.spanId, isRemote: true });
    await client.close();
  });

  test("alice's delegation token on bob's connection is refused: token_user_mismatch", async () => {
    const client = await connect("bob-key", (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );

    const result = (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(result.isError).toBe(true);
    expect(result._meta?.["hopguard.dev/refusal"]).toMatchObject({
      code: "token_user_mismatch",
    } satisfies Partial<McpRefusal>);
    expect(executions).toEqual([]);
    await client.close();
  });
});
