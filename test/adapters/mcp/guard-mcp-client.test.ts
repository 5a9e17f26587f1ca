import { GRPC } from "@cerbos/grpc";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  CallToolResultSchema,
  ListToolsRequestSchema,
  ListToolsResultSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { guardMcpClient, type McpApprovalRequest } from "../../../src/adapters/mcp/index.ts";
import {
  createGuard,
  NoDelegationError,
  type PdpClient,
  PdpUnavailableError,
  runAs,
  SpanAttributes,
  ToolCallDeniedError,
} from "../../../src/index.ts";
import { type RecordingServer, startRecordingServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";
import { alice, researcher, scribe } from "../../support/users.ts";
import { unusedPort } from "./unused-port.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
const guard = createGuard({ client: pdp, tracer: tracing.tracer });
const read = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const write = { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } };
const move = {
  name: "move_file",
  arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
};

let server: RecordingServer;
beforeEach(async () => {
  server = await startRecordingServer();
});
afterEach(async () => {
  await server.close();
});

const refusal = (result: unknown): string => {
  const { isError, content } = result as CallToolResult;
  expect(isError).toBe(true);
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
};
const names = (tools: readonly Tool[]): string[] => tools.map((tool) => tool.name);

describe("guardMcpClient: calls", () => {
  test("an allowed call runs on the server and returns its result", async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(scribe),
    });

    const result = await filesystem.callTool(read);

    expect(result.content).toEqual([{ type: "text", text: "contents of /workspace/alice/notes.md" }]);
    expect(server.executed).toEqual(["read_file"]);
  });

  test("a call with no chain is refused and never reaches the server", async () => {
    const filesystem = guardMcpClient(server.client, { server: "filesystem" });

    expect(refusal(await filesystem.callTool(read))).toMatch(
      /^hopguard refused filesystem\/read_file: .*no delegation chain/,
    );
    expect((await filesystem.listTools()).tools).toEqual([]);
    expect(server.executed).toEqual([]);
  });

  test("an unreachable PDP refuses every call and lists no tools", async () => {
    const closed = new GRPC(`127.0.0.1:${await unusedPort()}`, { tls: false });
    try {
      const unreachable = createGuard({ client: closed, timeoutMs: 500 });
      const filesystem = guardMcpClient(server.client, {
        server: "filesystem",
        delegation: unreachable.forUser(alice),
      });

      expect(refusal(await filesystem.callTool(read))).toContain("PDP");
      expect((await filesystem.listTools()).tools).toEqual([]);
      const throwing = guardMcpClient(server.client, {
        server: "filesystem",
        delegation: unreachable.forUser(alice),
        onDenied: "throw",
      });
      await expect(throwing.callTool(read)).rejects.toSatisfy(PdpUnavailableError.isInstance);
      await expect(throwing.listTools()).rejects.toSatisfy(PdpUnavailableError.isInstance);
      expect(server.executed).toEqual([]);
    } finally {
      closed.close();
    }
  });

  test('onDenied: "throw" throws ToolCallDeniedError naming the denying hop, or the error when there is no chain', async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
      onDenied: "throw",
    });
    const chainless = guardMcpClient(server.client, { server: "filesystem", onDenied: "throw" });

    const error = await filesystem.callTool(write).catch((thrown: unknown) => thrown);

    expect(ToolCallDeniedError.isInstance(error)).toBe(true);
    expect((error as ToolCallDeniedError).decision.deniedBy).toBe("researcher");
    await expect(chainless.callTool(read)).rejects.toSatisfy(NoDelegationError.isInstance);
    await expect(chainless.listTools()).rejects.toSatisfy(NoDelegationError.isInstance);
    expect(server.executed).toEqual([]);
  });

  test("the ambient chain from runAs is read at each call, so one client serves concurrent chains", async () => {
    const filesystem = guardMcpClient(server.client, { server: "filesystem" });
    const writer = await guard.forUser(alice).delegate(scribe);
    const reader = await guard.forUser(alice).delegate(researcher);

    const [written, refused, readerTools] = await Promise.all([
      runAs(writer, () => filesystem.callTool(write)),
      runAs(reader, () => filesystem.callTool(write)),
      runAs(reader, () => filesystem.listTools()),
    ]);

    expect(written.isError).toBeFalsy();
    expect(refusal(refused)).toContain('denied by agent "researcher"');
    expect(names(readerTools.tools)).toEqual(["read_file", "list_allowed_directories"]);
    expect(server.executed).toEqual(["write_file"]);
  });

  test("each call leaves a hopguard.authorize span saying allow or deny", async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
    });

    tracing.reset();
    await filesystem.callTool(read);
    const allowed = onlySpan(tracing.spans(), "hopguard.authorize");
    tracing.reset();
    await filesystem.callTool(write);
    const denied = onlySpan(tracing.spans(), "hopguard.authorize");

    expect(allowed.attributes[SpanAttributes.decision]).toBe("allow");
    expect(allowed.attributes[SpanAttributes.toolName]).toBe("read_file");
    expect(denied.attributes[SpanAttributes.decision]).toBe("deny");
    expect(denied.attributes[SpanAttributes.deniedBy]).toBe("researcher");
  });
});

describe("guardMcpClient: scope", () => {
  test("a delegation scoped to filesystem/read_* lists and runs only read tools", async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate({ ...scribe, scope: { tools: ["filesystem/read_*"] } }),
    });

    expect(names((await filesystem.listTools()).tools)).toEqual(["read_file"]);
    expect(refusal(await filesystem.callTool(write))).toContain("denied by scope");
    expect(refusal(await filesystem.callTool({ name: "list_allowed_directories" }))).toContain("denied by scope");
    expect((await filesystem.callTool(read)).isError).toBeFalsy();
    expect(server.executed).toEqual(["read_file"]);
  });
});

describe("guardMcpClient: approval", () => {
  const writerFor = async (options: { approve?: (request: McpApprovalRequest) => boolean; onDenied?: "throw" }) =>
    guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(scribe),
      ...options,
    });

  test("a call that needs approval is refused when there is no approver", async () => {
    const filesystem = await writerFor({});

    expect(refusal(await filesystem.callTool(move))).toBe(
      "hopguard refused filesystem/move_file: a human's approval is required " +
        "(moving files changes what others rely on) and no approver is configured",
    );
    expect(server.executed).toEqual([]);
  });

  test("an approver that says yes runs the call, after seeing the call and the policy's reason", async () => {
    const asked: McpApprovalRequest[] = [];
    const filesystem = await writerFor({ approve: (request) => asked.push(request) > 0 });

    const result = await filesystem.callTool(move);

    expect(result.isError).toBeFalsy();
    expect(server.executed).toEqual(["move_file"]);
    expect(asked).toHaveLength(1);
    expect(asked[0]?.call).toMatchObject({ server: "filesystem", tool: "move_file", arguments: move.arguments });
    expect(asked[0]?.approval.reasons).toContain("moving files changes what others rely on");
    expect(asked[0]?.decision.allowed).toBe(true);
  });

  test("an approver that says no refuses the call, or throws ToolCallDeniedError when asked to", async () => {
    const filesystem = await writerFor({ approve: () => false });
    const sloppy = await writerFor({ approve: () => "no" as unknown as boolean });
    const throwing = await writerFor({ approve: () => false, onDenied: "throw" });

    expect(refusal(await filesystem.callTool(move))).toContain("was not given");
    expect(refusal(await sloppy.callTool(move))).toContain("was not given");
    const error = await throwing.callTool(move).catch((thrown: unknown) => thrown);
    expect(ToolCallDeniedError.isInstance(error)).toBe(true);
    expect((error as ToolCallDeniedError).decision).toMatchObject({ allowed: false, deniedBy: "approval" });
    expect(server.executed).toEqual([]);
  });

  test("an approver is never asked about a denied call, so it cannot turn a deny into an allow", async () => {
    let asked = 0;
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
      approve: () => ++asked > 0,
    });

    expect(refusal(await filesystem.callTool(move))).toContain('denied by agent "researcher"');
    expect(asked).toBe(0);
    expect(server.executed).toEqual([]);
  });
});

describe("guardMcpClient: the rest of the client", () => {
  test("request and the task streams check tools/call like callTool does, and request filters tools/list", async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
    });
    const streamed = async (stream: AsyncIterable<{ type: string; result?: unknown }>) => {
      const messages = [];
      for await (const message of stream) messages.push(message);
      return messages;
    };

    const viaRequest = await filesystem.request({ method: "tools/call", params: write }, CallToolResultSchema);
    const viaStream = await streamed(filesystem.experimental.tasks.callToolStream(write));
    const viaRequestStream = await streamed(
      filesystem.experimental.tasks.requestStream({ method: "tools/call", params: write }, CallToolResultSchema),
    );
    const allowedStream = await streamed(filesystem.experimental.tasks.callToolStream(read));
    // Protected in TypeScript only: JavaScript can call it.
    const viaProtectedStream = await streamed(
      (filesystem as unknown as { requestStream: typeof filesystem.experimental.tasks.requestStream }).requestStream(
        { method: "tools/call", params: write },
        CallToolResultSchema,
      ),
    );
    const listed = await filesystem.request({ method: "tools/list", params: {} }, ListToolsResultSchema);

    expect(refusal(viaRequest)).toContain('denied by agent "researcher"');
    expect(viaStream).toHaveLength(1);
    expect(refusal(viaStream[0]?.result)).toContain('denied by agent "researcher"');
    expect(refusal(viaRequestStream[0]?.result)).toContain('denied by agent "researcher"');
    expect(refusal(viaProtectedStream[0]?.result)).toContain('denied by agent "researcher"');
    expect(allowedStream.at(-1)?.type).toBe("result");
    expect(names(listed.tools)).toEqual(["read_file", "list_allowed_directories"]);
    expect(server.executed).toEqual(["read_file"]);
  });

  test("the rest of the public Client API is the original client's", async () => {
    const filesystem = guardMcpClient(server.client, { server: "filesystem", delegation: guard.forUser(alice) });

    expect(filesystem).toBeInstanceOf(Client);
    expect(filesystem.getServerVersion()?.name).toBe("filesystem");
    expect(filesystem.close).toBe(filesystem.close);
    await expect(filesystem.ping()).resolves.toEqual({});
    const onerror = () => {};
    filesystem.onerror = onerror;
    expect(server.client.onerror).toBe(onerror);
  });

  test("a Client subclass's overrides run on the client itself (its #private fields work); other members are hidden", () => {
    class TaggedClient extends Client {
      readonly #tag = "tagged";
      tag(): string {
        return this.#tag;
      }
      override getInstructions(): string {
        return this.#tag;
      }
    }
    const tagged = guardMcpClient(new TaggedClient({ name: "hopguard-test", version: "0.0.0" }), {
      server: "filesystem",
    });

    expect(tagged).toBeInstanceOf(TaggedClient);
    expect(tagged.getInstructions()).toBe("tagged");
    // Only the public MCP Client API is exposed: a member nobody vetted could be a way around the check.
    expect((tagged as Partial<TaggedClient>).tag).toBeUndefined();
  });

  test("rejects options that would leave it unable to check anything", () => {
    expect(() => guardMcpClient(server.client, { server: "" })).toThrow(/options.server/);
    expect(() => guardMcpClient(server.client, { server: "a/b" })).toThrow(/options.server/);
    expect(() => guardMcpClient(server.client, { server: "filesystem", onDenied: "ignore" as "throw" })).toThrow(
      /options.onDenied/,
    );
  });
});

/** A server that pages its tool list and counts how often it was listed. */
async function startPagedServer({ failListing = false } = {}) {
  const pages: Tool[][] = [
    [
      { name: "read_file", inputSchema: { type: "object" }, annotations: { readOnlyHint: true } },
      { name: "write_file", inputSchema: { type: "object" }, annotations: { destructiveHint: true } },
    ],
    [{ name: "move_file", inputSchema: { type: "object" }, annotations: { destructiveHint: true } }],
  ];
  const executed: string[] = [];
  let listings = 0;
  const mcp = new Server({ name: "paged", version: "0.0.0" }, { capabilities: { tools: {} } });
  mcp.setRequestHandler(ListToolsRequestSchema, (request) => {
    listings++;
    if (failListing) throw new Error("tool registry unavailable");
    return request.params?.cursor === "2" ? { tools: pages[1] } : { tools: pages[0], nextCursor: "2" };
  });
  mcp.setRequestHandler(CallToolRequestSchema, (request) => {
    executed.push(request.params.name);
    return { content: [] };
  });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await mcp.connect(serverTransport);
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(clientTransport);
  return { client, executed, listings: () => listings, close: () => client.close().then(() => mcp.close()) };
}

describe("guardMcpClient: listings and annotations", () => {
  const checkedAnnotations: unknown[] = [];
  const spyingPdp: PdpClient = {
    checkResources: (request, options) => {
      for (const { resource } of request.resources) checkedAnnotations.push(resource.attr?.annotations);
      return pdp.checkResources(request, options);
    },
    planResources: (request, options) => pdp.planResources(request, options),
  };
  let paged: Awaited<ReturnType<typeof startPagedServer>>;
  beforeEach(async () => {
    paged = await startPagedServer();
    checkedAnnotations.length = 0;
  });
  afterEach(() => paged.close());

  test("a filtered page keeps its nextCursor and the rest of the MCP result", async () => {
    const filesystem = guardMcpClient(paged.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
    });

    const first = await filesystem.listTools();
    const second = await filesystem.listTools({ cursor: "2" });

    expect(names(first.tools)).toEqual(["read_file"]);
    expect(first.nextCursor).toBe("2");
    expect(second.tools).toEqual([]);
    expect(second.nextCursor).toBeUndefined();
  });

  test("a tool called before any listing is checked with its annotations, fetched once for all pages", async () => {
    const filesystem = guardMcpClient(paged.client, {
      server: "filesystem",
      delegation: await createGuard({ client: spyingPdp }).forUser(alice).delegate(scribe),
    });

    await filesystem.callTool({ name: "move_file", arguments: move.arguments }).catch(() => undefined);
    await filesystem.callTool(read);
    await filesystem.callTool(read);

    expect(paged.listings()).toBe(2);
    expect(checkedAnnotations).toContainEqual({ destructiveHint: true });
    expect(checkedAnnotations.at(-1)).toEqual({ readOnlyHint: true });
    expect(paged.executed).toEqual(["read_file", "read_file"]);
  });
});

test("a server whose tool list fails cannot have a call judged without annotations: refused, nothing runs", async () => {
  const broken = await startPagedServer({ failListing: true });
  try {
    const delegation = await guard.forUser(alice).delegate(scribe);
    const refusing = guardMcpClient(broken.client, { server: "filesystem", delegation });
    const result = await refusing.callTool(read);
    expect(result.isError).toBe(true);
    expect(JSON.stringify(result.content)).toContain("annotations could not be read");
    const throwing = guardMcpClient(broken.client, { server: "filesystem", delegation, onDenied: "throw" });
    await expect(throwing.callTool(read)).rejects.toThrow(/tool registry unavailable/);
    expect(broken.executed).toEqual([]);
  } finally {
    await broken.close();
  }
});

describe("guardMcpClient: where the client was used", () => {
  test("@langchain/mcp-adapters loads only the callable tools, and their calls are checked", async () => {
    const filesystem = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await guard.forUser(alice).delegate(researcher),
    });

    const tools = await loadMcpTools("filesystem", filesystem);
    const readFile = tools.find((tool) => tool.name === "read_file");

    expect(tools.map((tool) => tool.name)).toEqual(["read_file", "list_allowed_directories"]);
    expect(await readFile?.invoke(read.arguments)).toContain("contents of /workspace/alice/notes.md");
    expect(server.executed).toEqual(["read_file"]);
  });
});
