import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ClientRequest, ListToolsResult } from "@modelcontextprotocol/sdk/types.js";
import type { Tracer } from "@opentelemetry/api";
import type { ApprovalRequest } from "../../approval.ts";
import type { ToolCall } from "../../cerbos-request.ts";
import type { Decision } from "../../decision.ts";
import type { Delegation } from "../../delegation.ts";
import { InvalidInputError } from "../../errors.ts";
import { overlay } from "./overlay.ts";
import { createToolGate, type ToolCallParams, type ToolGate } from "./tool-gate.ts";

/** What {@link GuardMcpClientOptions.approve} is asked to approve. */
export interface McpApprovalRequest {
  /** The call as hopguard authorized it: server, tool, arguments and annotations. */
  readonly call: ToolCall;
  /** The PDP's decision: allowed, with the outputs that asked for approval. */
  readonly decision: Decision;
  /** Why approval is needed, and which hops' rules asked for it. */
  readonly approval: ApprovalRequest;
}

/** Options for {@link guardMcpClient}. */
export interface GuardMcpClientOptions {
  /** The server's name in policies: its tools are checked as resource kind `mcp::<server>`. No `/`. */
  server: string;
  /**
   * The chain every call acts for.
   *
   * @defaultValue the ambient chain set by `runAs` at the time of each call
   */
  delegation?: Delegation | undefined;
  /**
   * What a refused call does. `"refuse"` answers with an `isError` result the model can read, and a listing with
   * no tools; `"throw"` throws a {@link ToolCallDeniedError} for a policy's (or an approver's) deny, or the
   * underlying {@link HopguardError} when there is no chain or the PDP cannot answer.
   *
   * @defaultValue `"refuse"`
   */
  onDenied?: "refuse" | "throw" | undefined;
  /**
   * Asked when the PDP allows a call but a rule's output asks for a human's approval. The tool runs only if it
   * returns (or resolves to) exactly `true`. It is never asked about a denied call.
   *
   * @defaultValue none: every call that needs approval is refused
   */
  approve?: ((request: McpApprovalRequest) => Promise<boolean> | boolean) | undefined;
  /**
   * The tracer for the `hopguard.authorize` span of a call made without any chain; calls with a chain use the
   * guard's tracer.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

const onDeniedChoices: ReadonlySet<unknown> = new Set(["refuse", "throw", undefined]);

/**
 * Guards an MCP SDK `Client`: the returned client lists only the tools the chain could call, and asks Cerbos about
 * every hop of the chain before any tool call reaches the server. Everything else is the original client's.
 *
 * @remarks
 * The result is a view of `client`, not a copy: it stays an `instanceof Client`, shares its connection, and works
 * wherever the client did (for instance `loadMcpTools` from `@langchain/mcp-adapters`). Every way the client API
 * can send `tools/call` — `callTool`, `request`, and the experimental task streams — goes through the same check.
 * Keep the unguarded `client` away from the model: calls made through it are not checked.
 *
 * @example
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client/index.js";
 * import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
 * import { createGuard, startLocalPdp } from "hopguard";
 * import { guardMcpClient } from "hopguard/mcp";
 *
 * await using pdp = await startLocalPdp();
 * const alice = createGuard({ client: pdp.client }).forUser({ id: "alice", roles: ["user"], attr: { workspace: "/workspace/alice" } });
 * const researcher = await alice.delegate({ id: "researcher", roles: ["agent"] });
 *
 * const client = new Client({ name: "my-agent", version: "1.0.0" });
 * await client.connect(new StdioClientTransport({ command: "mcp-server-filesystem", args: ["/workspace/alice"] }));
 * const filesystem = guardMcpClient(client, { server: "filesystem", delegation: researcher });
 *
 * const { tools } = await filesystem.listTools(); // only the tools the researcher may call for alice
 * const result = await filesystem.callTool({ name: "write_file", arguments: { path: "/workspace/alice/a.md", content: "" } });
 * // result.isError === true; its text: hopguard refused filesystem/write_file: denied by agent "researcher" ...
 * ```
 */
export function guardMcpClient<C extends Client>(client: C, options: GuardMcpClientOptions): C {
  if (typeof options?.server !== "string" || options.server === "" || options.server.includes("/")) {
    throw new InvalidInputError("options.server", "must be a non-empty string without '/'");
  }
  if (!onDeniedChoices.has(options.onDenied)) {
    throw new InvalidInputError("options.onDenied", 'must be "refuse" or "throw"');
  }
  if (options.approve !== undefined && typeof options.approve !== "function") {
    throw new InvalidInputError("options.approve", "must be a function");
  }
  const gate = createToolGate(client, options);
  // `requestStream` is protected in TypeScript only; JavaScript callers can reach it, so it is guarded too.
  const streaming = client as unknown as Streaming;
  let experimental: Client["experimental"] | undefined;

  const overrides = {
    async listTools(...[params, requestOptions]: Parameters<Client["listTools"]>) {
      return gate.filter(await client.listTools(params, requestOptions), requestOptions?.signal);
    },

    async callTool(...[params, resultSchema, requestOptions]: Parameters<Client["callTool"]>) {
      return (
        (await gate.admit(params, requestOptions?.signal)) ?? client.callTool(params, resultSchema, requestOptions)
      );
    },

    async request(...[request, resultSchema, requestOptions]: Parameters<Client["request"]>) {
      const signal = requestOptions?.signal;
      if (isToolCall(request)) {
        return (await gate.admit(request.params, signal)) ?? client.request(request, resultSchema, requestOptions);
      }
      const result = await client.request(request, resultSchema, requestOptions);
      return request.method === "tools/list" ? gate.filter(result as ListToolsResult, signal) : result;
    },

    requestStream(request: ClientRequest, resultSchema: unknown, requestOptions?: RequestOptions) {
      return guardStream(gate, request, requestOptions, () =>
        streaming.requestStream(request, resultSchema, requestOptions),
      );
    },

    get experimental() {
      if (experimental === undefined) {
        const tasks = client.experimental.tasks;
        experimental = Object.freeze({
          tasks: overlay(tasks, {
            callToolStream(...[params, resultSchema, requestOptions]: Parameters<typeof tasks.callToolStream>) {
              return guardStream(gate, { method: "tools/call", params }, requestOptions, () =>
                tasks.callToolStream(params, resultSchema, requestOptions),
              );
            },
            requestStream(...[request, resultSchema, requestOptions]: Parameters<typeof tasks.requestStream>) {
              return guardStream(gate, request, requestOptions, () =>
                tasks.requestStream(request, resultSchema, requestOptions),
              );
            },
          }),
        });
      }
      return experimental;
    },
  };
  return overlay(client, overrides);
}

interface Streaming {
  requestStream(request: unknown, resultSchema: unknown, options?: RequestOptions): AsyncGenerator<unknown, void, void>;
}

function isToolCall(request: {
  method: string;
  params?: unknown;
}): request is { method: "tools/call"; params: ToolCallParams } {
  return request.method === "tools/call";
}

/** Streams `open()` unless `request` is a tool call the gate refuses; then the refusal is the stream's one result. */
async function* guardStream<M>(
  gate: ToolGate,
  request: { method: string; params?: unknown },
  requestOptions: RequestOptions | undefined,
  open: () => AsyncGenerator<M, void, void>,
): AsyncGenerator<M | { type: "result"; result: CallToolResult }, void, void> {
  if (isToolCall(request)) {
    const refusal = await gate.admit(request.params, requestOptions?.signal);
    if (refusal !== undefined) {
      yield { type: "result", result: refusal };
      return;
    }
  }
  yield* open();
}
