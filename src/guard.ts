import type { Tracer } from "@opentelemetry/api";
import { type ActorInput, toActor } from "./actor.ts";
import { defaultToolCallCheck, type ToolCallMapper } from "./cerbos-request.ts";
import { runAs } from "./current-delegation.ts";
import { Delegation, type GuardRuntime } from "./delegation.ts";
import { InvalidInputError } from "./errors.ts";
import type { PdpClient } from "./pdp-client.ts";
import { rootScope, type Scope } from "./scope.ts";
import { defaultTracer } from "./telemetry.ts";

/** Options for {@link createGuard}. */
export interface GuardOptions {
  /**
   * The Cerbos client to ask: a `@cerbos/grpc` `GRPC` for a local or remote PDP. TLS and credentials are the
   * client's business.
   */
  client: PdpClient;
  /**
   * How long one round of per-hop checks may take before it fails closed with {@link PdpUnavailableError}.
   *
   * @defaultValue `1000`
   */
  timeoutMs?: number | undefined;
  /**
   * Maps a tool call to the Cerbos resource and action to check.
   *
   * @defaultValue {@link defaultToolCallCheck}: kind `mcp::<server>`, id and action `<tool>`
   */
  mapToolCall?: ToolCallMapper | undefined;
  /**
   * The deepest a chain may grow, counting the user as depth 0.
   *
   * @defaultValue `5`
   */
  maxDepth?: number | undefined;
  /**
   * The tracer for decision spans.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`, a no-op until an OpenTelemetry SDK is registered
   */
  tracer?: Tracer | undefined;
  /**
   * The most resources Cerbos accepts in one request (its `server.requestLimits.maxResourcesPerRequest`); tool
   * listings are batched to it.
   *
   * @defaultValue `50`
   */
  maxResourcesPerRequest?: number | undefined;
}

/** Options for {@link Guard.forUser}. */
export interface UserOptions {
  /** Limits for the whole chain, e.g. the user's session expiry or the tools this app ever exposes. */
  scope?: Scope | undefined;
}

/** Creates delegation chains that authorize every hop with Cerbos. */
export interface Guard {
  /** Starts a chain at a user, who acts directly until they delegate. */
  forUser(user: ActorInput, options?: UserOptions): Delegation;
  /** Runs `fn` with `delegation` as the ambient chain for guarded tools; see {@link runAs}. */
  runAs<T>(delegation: Delegation, fn: () => T): T;
}

/**
 * Creates a guard around a Cerbos client.
 *
 * @example
 * ```ts
 * import { createGuard, startLocalPdp } from "hopguard";
 *
 * await using pdp = await startLocalPdp();
 * const guard = createGuard({ client: pdp.client });
 * const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { workspace: "/workspace/alice" } });
 * const researcher = await alice.delegate({ id: "researcher", roles: ["agent"], scope: { tools: ["filesystem/read_*"] } });
 * const decision = await researcher.authorize({ server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/a.md" } });
 * ```
 */
export function createGuard(options: GuardOptions): Guard {
  const {
    client,
    timeoutMs = 1000,
    mapToolCall = defaultToolCallCheck,
    maxDepth = 5,
    tracer,
    maxResourcesPerRequest = 50,
  } = options;
  if (typeof client?.checkResources !== "function") {
    throw new InvalidInputError("options.client", "must be a Cerbos client with checkResources (e.g. @cerbos/grpc)");
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidInputError("options.timeoutMs", "must be a positive number of milliseconds");
  }
  if (!Number.isInteger(maxDepth) || maxDepth < 0) {
    throw new InvalidInputError("options.maxDepth", "must be a whole number ≥ 0");
  }
  if (!Number.isInteger(maxResourcesPerRequest) || maxResourcesPerRequest < 1) {
    throw new InvalidInputError("options.maxResourcesPerRequest", "must be a whole number ≥ 1");
  }
  const runtime: GuardRuntime = Object.freeze({
    client,
    timeoutMs,
    mapToolCall,
    tracer: tracer === undefined ? defaultTracer : () => tracer,
    maxResourcesPerRequest,
  });
  return Object.freeze({
    forUser(user: ActorInput, userOptions: UserOptions = {}): Delegation {
      return Delegation.root(runtime, toActor(user, "user"), rootScope(userOptions.scope, maxDepth, "scope"));
    },
    runAs,
  });
}
