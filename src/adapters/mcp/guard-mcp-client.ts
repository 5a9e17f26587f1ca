import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Tracer } from "@opentelemetry/api";
import type { Delegation } from "../../delegation.ts";
import { InvalidInputError } from "../../errors.ts";
import type { McpApprover } from "./ask-approval.ts";
import { ClientGate } from "./client-gate.ts";
import { guardedMembers } from "./client-members.ts";
import { allowListedView } from "./client-view.ts";
import { createToolGate } from "./tool-gate.ts";

/** Options for {@link guardMcpClient}. */
export interface GuardMcpClientOptions {
  /** The server's name in policies: its tools are checked as resource kind `mcp::<server>`. No `/`. */
  server: string;
  /**
   * The chain every call acts for. A call made inside `runAs` for a chain delegated from this one (a sub-agent of
   * this orchestrator) acts for that longer chain instead: every hop and the narrower scope are checked.
   *
   * @defaultValue the ambient chain set by `runAs` at the time of each call
   */
  delegation?: Delegation | undefined;
  /**
   * What a refused call does. `"refuse"` answers with an `isError` result the model can read, and a listing with
   * no tools; `"throw"` throws a {@link ToolCallDeniedError} for a policy's (or an approver's) deny, or the
   * underlying {@link HopguardError} when there is no chain, the PDP cannot answer or the client is not connected
   * through hopguard. An approver that throws makes the call throw that error.
   *
   * @defaultValue `"refuse"`
   */
  onDenied?: "refuse" | "throw" | undefined;
  /**
   * Asked when the PDP allows a call but a rule's output asks for a human's approval. The tool runs only if it
   * answers (or resolves to) exactly `true` or `{ approved: true }`; `{ approved, approver, reason }` names who
   * answered and why. Every answer — an approval, a refusal, an approver that throws — is recorded as a
   * `hopguard.approval` span. It is never asked about a denied call.
   *
   * @defaultValue none: every call that needs approval is refused
   */
  approve?: McpApprover | undefined;
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
 * every hop of the chain before any tool call reaches the server.
 *
 * @remarks
 * **The guarantee**: from this call on, every `tools/call` the client sends — through the returned view, the
 * original `client`, `request`, the task streams, `notification`, the transport's `send`, or a JSON-RPC message
 * written by hand — was authorized by the PDP, and carries exactly the name and arguments the PDP saw. hopguard
 * gates the client's transport itself: a `tools/call` leaves only with a single-use ticket that the check issued
 * for that exact call; anything else is rejected before it is sent, as is a JSON-RPC batch. Each call is read once
 * into a snapshot (getters, `toJSON`, later edits by the caller change nothing that is sent). Tool annotations,
 * which policies may key on, come only from hopguard's own reading of the server's tool list, read again after
 * the server announces a change; they are the server's claims, not facts.
 *
 * **The limit**: code that held the raw transport before it was gated and calls its class's own `send` (say
 * `StdioClientTransport.prototype.send.call(transport, message)`), or that writes to the pipe or socket beneath, is
 * out of reach of any in-process guard: where that matters, guard the server side too.
 *
 * The result is a view of `client`, not a copy: it stays an `instanceof Client`, shares its connection, and works
 * wherever the client did (for instance `loadMcpTools` from `@langchain/mcp-adapters`). It exposes exactly the
 * public `Client` API (members a user needs, not the SDK's internals): any other property reads as `undefined`.
 * If `client` is not connected yet, connect the view (`view.connect(transport)`); a client reconnected around the
 * view afterwards is refused every call.
 *
 * @example
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client/index.js";
 * import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
 * import { createGuard } from "hopguard";
 * import { startLocalPdp } from "hopguard/local-pdp";
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
  if (typeof client !== "object" || client === null) throw new InvalidInputError("client", "must be an MCP Client");
  if (typeof options?.server !== "string" || options.server === "" || options.server.includes("/")) {
    throw new InvalidInputError("options.server", "must be a non-empty string without '/'");
  }
  if (!onDeniedChoices.has(options.onDenied)) {
    throw new InvalidInputError("options.onDenied", 'must be "refuse" or "throw"');
  }
  if (options.approve !== undefined && typeof options.approve !== "function") {
    throw new InvalidInputError("options.approve", "must be a function");
  }
  const gate = ClientGate.of(client);
  return allowListedView(client, guardedMembers(client, gate, createToolGate(gate, options)));
}
