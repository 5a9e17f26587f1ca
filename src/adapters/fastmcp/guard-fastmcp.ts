import { AsyncLocalStorage } from "node:async_hooks";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { FastMCP, FastMCPSession, FastMCPSessionAuth } from "fastmcp";
import type { ActorInput } from "../../actor.ts";
import { InvalidInputError } from "../../errors.ts";
import type { ActorReference } from "../../identity/identity-resolvers.ts";
import { defaultTracer } from "../../telemetry.ts";
import { type GuardMcpServerOptions, guardMcpServer } from "../mcp/server/guard-mcp-server.ts";
import type { McpUserResolver } from "../mcp/server/request-principal.ts";
import { admit } from "./admission.ts";
import { guardRegistrations } from "./entries.ts";
import { HeldTransport } from "./held-transport.ts";

/**
 * Maps a FastMCP session's `authenticate` result (what your tools get as `context.session`) to the user it acts
 * for, or `undefined` for none. Answer a full user, or — with an `identities.user` resolver on the guard — its id.
 */
export type FastMCPUserResolver<T extends FastMCPSessionAuth = FastMCPSessionAuth> = (
  auth: NonNullable<T>,
) => ActorInput | ActorReference | undefined | PromiseLike<ActorInput | ActorReference | undefined>;

/**
 * Options for {@link guardFastMCP}: those of `guardMcpServer` (the PDP `client`, `tokens`, `server`, `onDenied`,
 * `errorCode`, `metaKey`, `mapToolCall`, `timeoutMs`, `tracer`, ...), with `user` taking FastMCP's session auth.
 */
export interface GuardFastMCPOptions<T extends FastMCPSessionAuth = FastMCPSessionAuth>
  extends Omit<GuardMcpServerOptions, "user"> {
  /**
   * Maps the session's `authenticate` result to the user a request without a delegation token acts for. With a
   * token, the token's user must be this user (else `token_user_mismatch`).
   *
   * @defaultValue none: only delegation tokens (`params._meta["hopguard.dev/delegation"]`) say who a request acts for
   */
  user?: FastMCPUserResolver<T> | undefined;
}

/** A session hopguard connected itself (stdio, `app.connect`): its auth, and its transport, held until guarded. */
interface Origin {
  readonly auth: unknown;
  readonly transport: HeldTransport;
}

/** Where the session's auth travels to the user mapping, inside the `authInfo` the guard hands it. */
const authKey = "hopguard.dev/fastmcp-auth";

const guardedApps = new WeakSet<object>();

/**
 * Guards a FastMCP app so that every session lists, runs, reads and gets only what every hop of the calling chain
 * may, as decided by this server's own PDP — the server guard of `hopguard/mcp`, in FastMCP's idiom.
 *
 * @remarks
 * **Who is asking.** A request acts for the chain in its delegation token (`params._meta["hopguard.dev/delegation"]`,
 * verified with `tokens` and rebuilt hop by hop on this PDP), or else for `user(auth)`, the user your `authenticate`
 * result maps to. No chain, a bad token, a token for another user: refused, nothing runs.
 *
 * **How.** FastMCP gives each session its own MCP SDK `Server` (`session.server`) and announces it with a `connect`
 * event; hopguard then guards that server's request handlers (see `guardMcpServer`: filtered listings; decided
 * calls, reads, prompt gets and completions; spans; fail closed), so tools added after `start()` are guarded too.
 * - **stdio** and **`app.connect(transport, auth)`**: FastMCP announces a session only once its client has
 *   initialized, and would serve requests before; hopguard connects these sessions itself (`start()` on stdio goes
 *   through `app.connect`, calling `authenticate(undefined)` once as FastMCP does) and holds every client request
 *   but `initialize` until the session is guarded.
 * - **Stateful httpStream**: announced before its first request is served; the session's auth is what FastMCP's
 *   `authenticate` returned for the latest request (`updateAuth`). Its **SSE** endpoint (`/sse`) is announced late
 *   and never hands hopguard its auth: SSE requests act only on delegation tokens, and any arriving before the
 *   announcement are answered by FastMCP unfiltered for listings — calls and reads are refused (see below).
 * - **Stateless httpStream** is never announced: `start()` throws for it (`httpStream.stateless`,
 *   `--stateless true`, `FASTMCP_STATELESS=true`).
 *
 * As a backstop, every `execute`, `load` and `complete` registered after this call runs only inside a request a
 * session guard admitted (a tool's own `app.embedded(uri)` included); anything else is refused before it runs.
 *
 * **Call it on a new app**, before registering tools, resources and prompts (those registered earlier are guarded by
 * the session guard but not by the backstop) and before `start()`/`connect()`: it throws when the app already has
 * sessions. Returns `app` itself.
 *
 * @example
 * ```ts
 * import { FastMCP } from "fastmcp";
 * import { createTokenVerifier } from "hopguard";
 * import { guardFastMCP } from "hopguard/fastmcp";
 * import { startLocalPdp } from "hopguard/local-pdp";
 * import { z } from "zod";
 *
 * const pdp = await startLocalPdp();
 * const people = { "alice-key": { id: "alice", roles: ["user"], attr: { workspace: "/workspace/alice" } } };
 * const app = guardFastMCP(
 *   new FastMCP({
 *     name: "filesystem",
 *     version: "1.0.0",
 *     authenticate: async (request) => {
 *       const key = request.headers.authorization?.replace(/^Bearer /, "") ?? "";
 *       return key in people ? { person: people[key as keyof typeof people] } : undefined;
 *     },
 *   }),
 *   {
 *     server: "filesystem",
 *     client: pdp.client,
 *     tokens: createTokenVerifier({ keys: new URL("https://agents.example.com/.well-known/jwks.json"), audience: "filesystem" }),
 *     user: (auth) => auth.person,
 *   },
 * );
 * app.addTool({
 *   name: "read_file",
 *   parameters: z.object({ path: z.string() }),
 *   annotations: { readOnlyHint: true },
 *   execute: async ({ path }) => `contents of ${path}`,
 * });
 * await app.start({ transportType: "httpStream", httpStream: { port: 3000, host: "127.0.0.1" } });
 * ```
 */
export function guardFastMCP<T extends FastMCPSessionAuth>(
  app: FastMCP<T>,
  options: GuardFastMCPOptions<T>,
): FastMCP<T> {
  const { user, ...serverOptions } = options ?? ({} as GuardFastMCPOptions<T>);
  if (user !== undefined && typeof user !== "function") {
    throw new InvalidInputError("options.user", "must be a function");
  }
  const internals = app as unknown as AppInternals;
  if (
    typeof app !== "object" ||
    app === null ||
    typeof internals.on !== "function" ||
    typeof internals.start !== "function" ||
    typeof internals.connect !== "function" ||
    !Array.isArray(internals.sessions)
  ) {
    throw new InvalidInputError("app", "must be a FastMCP app (new FastMCP(...) from fastmcp 4.x)");
  }
  if (guardedApps.has(app)) throw new InvalidInputError("app", "is already guarded by hopguard");
  if (internals.sessions.length > 0 || internals.serverState === "running") {
    throw new InvalidInputError(
      "app",
      "already serves sessions hopguard did not guard: call guardFastMCP before start() or connect()",
    );
  }
  const mapUser: McpUserResolver | undefined =
    user === undefined ? undefined : (authInfo) => user(authInfo.extra?.[authKey] as NonNullable<T>);
  const sessionOptions: GuardMcpServerOptions = { ...serverOptions, user: mapUser };
  // Validates the options (and that this SDK's servers are the kind hopguard guards) now, not at the first session.
  guardMcpServer(new Server({ name: "hopguard-probe", version: "0" }, { capabilities: {} }), sessionOptions);

  const origins = new AsyncLocalStorage<Origin>();
  guardRegistrations(app, { server: serverOptions.server, tracer: serverOptions.tracer ?? defaultTracer() });
  const start = internals.start;
  const connect = internals.connect;
  const connectHeld = (transport: Transport, auth?: unknown) => {
    const held = new HeldTransport(transport);
    return origins.run({ auth, transport: held }, () => connect.call(app, held, auth)) as Promise<FastMCPSession<T>>;
  };
  pin(app, "connect", connectHeld);
  pin(app, "start", async (startOptions?: StartOptions) => {
    const served = startTransport(startOptions);
    if (served === "stateless") {
      throw new InvalidInputError(
        "httpStream.stateless",
        "hopguard cannot guard a stateless FastMCP server: FastMCP never announces its sessions, so their listings could not be filtered nor their requests decided; serve stateful httpStream or stdio",
      );
    }
    if (served === "stdio") return startStdio(internals, connectHeld);
    return start.call(app, startOptions);
  });
  internals.on("connect", ({ session }) => {
    try {
      const origin = origins.getStore();
      guardSession(session as SessionInternals, sessionOptions, origin?.auth);
      origin?.transport.release();
    } catch (error) {
      // A session hopguard could not guard must not serve: close it, and let start() or connect() say why.
      void (session as FastMCPSession<T>).close();
      throw error;
    }
  });
  guardedApps.add(app);
  return app;
}

/** The FastMCP members hopguard uses (public in fastmcp 4.x). */
interface AppInternals {
  on(event: "connect", listener: (event: { session: unknown }) => void): unknown;
  start: (options?: StartOptions) => Promise<void>;
  connect: (transport: Transport, auth?: unknown) => Promise<unknown>;
  readonly sessions: unknown[];
  readonly serverState?: unknown;
  readonly options?: {
    authenticate?: ((request: undefined) => unknown) | undefined;
    auth?: { authenticate?: (request: undefined) => unknown } | undefined;
    logger?: { error(...args: unknown[]): void } | undefined;
  };
}

interface SessionInternals {
  readonly server: { _requestHandlers?: unknown };
  updateAuth?: (auth: unknown) => void;
}

interface StartOptions {
  transportType?: string;
  httpStream?: { stateless?: boolean | undefined } | undefined;
}

type RawHandler = (request: { method?: unknown; params?: unknown }, extra: Record<string, unknown>) => unknown;

/**
 * FastMCP's stdio `start()`, through `app.connect` so that hopguard holds the client's requests until the session is
 * guarded (FastMCP's own stdio start serves them from the moment the client initialized, before it announces the
 * session). As FastMCP does: `authenticate(undefined)` once, a failure logged and served without auth, the transport
 * closed when stdin ends.
 */
async function startStdio(
  app: AppInternals,
  connect: (transport: Transport, auth?: unknown) => Promise<{ close(): Promise<void> }>,
): Promise<void> {
  const authenticate = app.options?.authenticate ?? app.options?.auth?.authenticate?.bind(app.options.auth);
  let auth: unknown;
  if (authenticate !== undefined) {
    try {
      auth = (await authenticate(undefined)) ?? undefined;
    } catch (error) {
      (app.options?.logger ?? console).error(
        "[FastMCP error] Authentication failed for stdio transport:",
        error instanceof Error ? error.message : String(error),
      );
    }
  }
  const session = await connect(new StdioServerTransport(), auth);
  let closed = false;
  const onStdinClose = () => {
    if (closed) return;
    closed = true;
    process.stdin.off("close", onStdinClose);
    process.stdin.off("end", onStdinClose);
    // The whole session: one made by app.connect pings its client (FastMCP's default for non-stdio sessions).
    session.close().catch(() => undefined);
  };
  process.stdin.on("close", onStdinClose);
  process.stdin.on("end", onStdinClose);
}

function guardSession(session: SessionInternals, options: GuardMcpServerOptions, initialAuth: unknown): void {
  let auth = initialAuth;
  const updateAuth = session.updateAuth;
  if (typeof updateAuth === "function") {
    // mcp-proxy authenticates every HTTP request of a session and hands the result to the session before the request.
    pin(session, "updateAuth", (next: unknown) => {
      auth = next;
      updateAuth.call(session, next);
    });
  }
  guardMcpServer(session.server, options);
  const handlers = session.server._requestHandlers as Map<string, RawHandler> | undefined;
  if (!(handlers instanceof Map)) {
    throw new InvalidInputError("session.server", "was not guarded: its request handler map is gone");
  }
  const guarded = handlers.get;
  pin(handlers, "get", (method: string) => {
    const handler = guarded.call(handlers, method);
    if (handler === undefined) return undefined;
    return (request: { method?: unknown; params?: unknown }, extra: Record<string, unknown>) => {
      // The session's auth as FastMCP hands it to the session's tools, never an authInfo a transport made up.
      const authInfo =
        auth === undefined || auth === null
          ? undefined
          : { token: "", clientId: "", scopes: [], extra: { [authKey]: auth } };
      return admit(request, () => handler(request, { ...extra, authInfo }));
    };
  });
}

/** What `app.start(options)` would serve, read as fastmcp 4.x reads its options, argv and environment. */
function startTransport(options: StartOptions | undefined): "stdio" | "stateful" | "stateless" {
  const args = process.argv.slice(2);
  const arg = (name: string) => {
    const index = args.indexOf(`--${name}`);
    return index !== -1 && index + 1 < args.length ? args[index + 1] : undefined;
  };
  const transportArg = arg("transport");
  const transport =
    options?.transportType ||
    (transportArg === "http-stream" ? "httpStream" : transportArg) ||
    process.env.FASTMCP_TRANSPORT ||
    "stdio";
  if (transport !== "httpStream") return "stdio";
  const stateless =
    options?.httpStream?.stateless || arg("stateless") === "true" || process.env.FASTMCP_STATELESS === "true";
  return stateless ? "stateless" : "stateful";
}

/** Replaces `key` on `target` for good: hopguard's wrappers must not be taken off again. */
function pin(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: false, configurable: false, enumerable: false });
}
