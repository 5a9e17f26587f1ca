import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";
import { defaultToolCallCheck, type ToolCallMapper } from "../../../cerbos-request.ts";
import { InvalidInputError } from "../../../errors.ts";
import { createGuard, type Guard, type GuardOptions } from "../../../guard.ts";
import { defaultTracer } from "../../../telemetry.ts";
import { delegationMetaKey } from "../token-transport.ts";
import { installHandlerGuard } from "./handler-map.ts";
import { requestGuard } from "./request-guard.ts";
import type { McpUserResolver } from "./request-principal.ts";
import { serverChecks } from "./server-checks.ts";

const guards = new WeakMap<object, { readonly guard: Guard; readonly settings: [string, unknown][] }>();

function sameSettings(before: readonly [string, unknown][], now: readonly [string, unknown][]): boolean {
  return (
    before.length === now.length &&
    before.every(([key, value], index) => {
      const [nowKey, nowValue] = now[index] as [string, unknown];
      return key === nowKey && Object.is(value, nowValue);
    })
  );
}

/**
 * Options for {@link guardMcpServer}: the options of the server's own guard (`createGuard`: the PDP `client`, the
 * token verifier `tokens`, `timeoutMs`, `tracer`, ...), and how the server names itself, finds each request's user
 * and refuses.
 */
export interface GuardMcpServerOptions extends GuardOptions {
  /**
   * The server's name in policies: its tools are checked as kind `mcp::<server>`, its resources as
   * `mcp::<server>::resource`, its prompts as `mcp::<server>::prompt` (see {@link serverChecks}). No `/`, no `::`.
   */
  server: string;
  /**
   * Maps a request's authenticated caller (`extra.authInfo`, which a transport sets from a verified bearer token —
   * on Streamable HTTP, what your code put on `req.auth`) to a user. That user acts directly when the request
   * carries no delegation token; when it carries one, the token's user must be this user (else `token_user_mismatch`).
   *
   * @defaultValue none: only delegation tokens say who a request acts for
   */
  user?: McpUserResolver | undefined;
  /**
   * What a refused `tools/call` answers: `"result"`, a tool error result the model can read (`isError: true`, the
   * refusal's text, and `_meta["hopguard.dev/refusal"]`); `"error"`, a JSON-RPC error (see `errorCode`). Every other
   * refused request is a JSON-RPC error; a refused listing leaves entries out.
   *
   * @defaultValue `"result"`
   */
  onDenied?: "result" | "error" | undefined;
  /**
   * The JSON-RPC error code of a refusal; `data.hopguard` holds `{ deniedBy, reason, code? }` ({@link McpRefusal}).
   *
   * @defaultValue `-32602` (`InvalidParams`): what the SDK answers for a tool, resource or prompt it does not have.
   * Clients written for the Python `cerbos-fastmcp` middleware expect `-32010` ("Unauthorized").
   */
  errorCode?: number | undefined;
  /**
   * The `params._meta` key the delegation token arrives under; hopguard's client transport uses the default.
   *
   * @defaultValue `"hopguard.dev/delegation"`
   */
  metaKey?: string | undefined;
  /**
   * Maps a tool call to the Cerbos resource and action to check. Resources and prompts always use hopguard's
   * contract ({@link serverChecks}).
   *
   * @defaultValue {@link defaultToolCallCheck}: kind `mcp::<server>`, id and action `<tool>`
   */
  mapToolCall?: ToolCallMapper | undefined;
}

const onDeniedChoices: ReadonlySet<unknown> = new Set(["result", "error", undefined]);

/**
 * Guards an MCP SDK server (`McpServer`, or the low-level `Server`) so that it lists, runs, reads and completes only
 * what every hop of the calling chain may, as decided by this server's own PDP: the server enforces whether or not
 * the client is guarded.
 *
 * @remarks
 * **Who is asking.** Each request acts for the chain in its delegation token, `params._meta["hopguard.dev/delegation"]`
 * (hopguard's `delegationTokenTransport` puts it there): verified with `tokens`, then rebuilt hop by hop on this PDP
 * (`guard.fromToken`). Without a token, the authenticated caller's user (`user`) acts directly. No chain, a bad
 * token (expired, for another server, tampered, revoked, ...), a token for another user than the authenticated one,
 * a PDP or resolver that cannot answer: the request is refused, its handler never runs. The token key is removed
 * from `_meta` before any handler sees it; handlers run inside `runAs(chain)`.
 *
 * **What is decided.**
 * - `tools/call`: the tool's call as `mcp::<server>` (core `decideToolCall`), with the annotations of the server's
 *   own tool list, never the request's; the handler gets a copy of exactly the arguments decided on. Refused: a tool
 *   error result (`onDenied: "result"`) or a JSON-RPC error. A rule asking for a person's approval refuses (no one
 *   answers on a server), recorded as a declined `hopguard.approval` span.
 * - `tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`: entries the chain could not use are
 *   left out (one batched check per hop; see `Delegation.callableTools`).
 * - `resources/read` (and `resources/subscribe`): `read` on `mcp::<server>::resource`, id the URI in its canonical
 *   form (`new URL(uri).href`), which is the form the handler then gets. `prompts/get`: `get` on
 *   `mcp::<server>::prompt` with its arguments. `completion/complete`: only for a prompt or template the chain may
 *   see listed. Refused: a JSON-RPC error, `errorCode` with `data.hopguard` = {@link McpRefusal}.
 * - `initialize` and `ping` pass; any other method needs a chain and is not decided further (note that `tasks/*`
 *   are not bound to the chain that created a task).
 *
 * **Telemetry.** Every decision is a span of the server's guard; a request carrying W3C trace context
 * (`_meta.traceparent`, else the HTTP `traceparent` header) runs in the caller's trace.
 *
 * **How.** hopguard wraps the server's request-handler map, so handlers registered before and after this call (an
 * `McpServer`'s lazily installed ones, tools registered after `connect`, a later `setRequestHandler`, the fallback)
 * are all guarded. It throws rather than install on a server whose SDK internals are not the ones it knows, and
 * throws when the server is already guarded. Returns `target` itself.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
 * import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
 * import { createTokenVerifier } from "hopguard";
 * import { startLocalPdp } from "hopguard/local-pdp";
 * import { guardMcpServer } from "hopguard/mcp";
 * import { z } from "zod";
 *
 * const pdp = await startLocalPdp();
 * const server = guardMcpServer(new McpServer({ name: "filesystem", version: "1.0.0" }), {
 *   server: "filesystem",
 *   client: pdp.client,
 *   tokens: createTokenVerifier({ keys: new URL("https://agents.example.com/.well-known/jwks.json"), audience: "filesystem" }),
 *   // When your HTTP layer authenticates callers (sets req.auth), one that sends no delegation token acts for itself.
 *   user: (authInfo) => ({ id: authInfo.clientId, roles: ["user"], attr: { workspace: `/workspace/${authInfo.clientId}` } }),
 * });
 * server.registerTool("read_file", { inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } }, async ({ path }) => ({
 *   content: [{ type: "text", text: `contents of ${path}` }],
 * }));
 * const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => crypto.randomUUID() });
 * await server.connect(transport);
 * createServer((req, res) => void transport.handleRequest(req, res)).listen(3000, "127.0.0.1");
 * ```
 */
export function guardMcpServer<S extends object>(target: S, options: GuardMcpServerOptions): S {
  const {
    server,
    user,
    onDenied = "result",
    errorCode = ErrorCode.InvalidParams,
    metaKey = delegationMetaKey,
    mapToolCall = defaultToolCallCheck,
    ...guardOptions
  } = options ?? ({} as GuardMcpServerOptions);
  if (typeof server !== "string" || server === "" || server.includes("/") || server.includes("::")) {
    throw new InvalidInputError("options.server", "must be a non-empty string without '/' or '::'");
  }
  if (user !== undefined && typeof user !== "function")
    throw new InvalidInputError("options.user", "must be a function");
  if (guardOptions.tokens === undefined && user === undefined) {
    throw new InvalidInputError(
      "options",
      "must say who requests act for: `tokens` (a token verifier) and/or `user` (the authenticated caller's user)",
    );
  }
  if (!onDeniedChoices.has(onDenied)) throw new InvalidInputError("options.onDenied", 'must be "result" or "error"');
  if (!Number.isSafeInteger(errorCode)) throw new InvalidInputError("options.errorCode", "must be an integer");
  if (typeof metaKey !== "string" || metaKey === "") {
    throw new InvalidInputError("options.metaKey", "must be a non-empty string");
  }
  if (typeof mapToolCall !== "function") throw new InvalidInputError("options.mapToolCall", "must be a function");
  // Servers guarded with one options object share one guard, so its plan cache and identity caches serve them all
  // (a FastMCP app guards every session with the same options) — as long as no option has changed since.
  const settings = Object.entries(options);
  const shared = guards.get(options);
  let guard: Guard;
  if (shared !== undefined && sameSettings(shared.settings, settings)) guard = shared.guard;
  else {
    guard = createGuard({ ...guardOptions, mapToolCall: serverChecks(server, mapToolCall) });
    guards.set(options, { guard, settings });
  }
  // An McpServer keeps its protocol object (a low-level Server) in `server`; FastMCP sessions too.
  const inner = (target as { server?: unknown }).server;
  const protocol = typeof inner === "object" && inner !== null && "_requestHandlers" in inner ? inner : target;
  installHandlerGuard(
    protocol,
    requestGuard({
      server,
      guard,
      tracer: guardOptions.tracer ?? defaultTracer(),
      metaKey,
      user,
      onDenied,
      errorCode,
    }),
  );
  return target;
}
