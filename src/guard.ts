import type { AuxData } from "@cerbos/core";
import type { Tracer } from "@opentelemetry/api";
import { type ActorInput, toActor } from "./actor.ts";
import { toAuxData } from "./aux-data.ts";
import { defaultToolCallCheck, type ToolCallMapper } from "./cerbos-request.ts";
import { runAs } from "./current-delegation.ts";
import { type CallOptions, Delegation, type GuardRuntime } from "./delegation.ts";
import type { TokenHop } from "./delegation-token.ts";
import { DelegationError, InvalidInputError, TokenError } from "./errors.ts";
import type { ActorReference, IdentityResolvers } from "./identity/identity-resolvers.ts";
import { actorFields, identityRuntime } from "./identity/identity-runtime.ts";
import type { PdpClient } from "./pdp-client.ts";
import type { PlanCacheClearOptions, PlanCacheStats } from "./plan-cache/plan-cache.ts";
import { type PlanCacheSettings, watchedPlanCache } from "./plan-cache/watched-plan-cache.ts";
import { rootScope, type Scope } from "./scope.ts";
import { defaultTracer } from "./telemetry.ts";
import type { TokenVerifier } from "./token-verifier.ts";

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
  /**
   * Verifies delegation tokens for {@link Guard.fromToken}: what an MCP server's guard accepts as a chain.
   *
   * @defaultValue none: `fromToken` refuses every token
   */
  tokens?: TokenVerifier | undefined;
  /**
   * Resolvers that complete partial identities before the PDP is asked: users (`resolveUser`), agents (`delegate`),
   * every hop of a token (`fromToken`), and resource attributes for each tool call (`R.attr.resource`). Their answers
   * are authoritative over what the caller or token claims; a failure refuses with {@link IdentityError}.
   *
   * @defaultValue none: principals are taken as the caller gives them
   */
  identities?: IdentityResolvers | undefined;
  /**
   * Answers hops from the PDP's query plans, kept in memory and evaluated in-process, instead of asking the PDP each
   * time: give it the policy folder the PDP serves (`{ policyDir }`). Hops it cannot answer soundly — rules with
   * outputs, clock reads, `has()` on what a plan cannot see, arguments a residual condition cannot judge — still go
   * to the PDP, as does every hop of the first call of a kind (whose plans are then fetched in the background).
   * `false` turns it off.
   *
   * @remarks
   * A cached answer is as fresh as its plan: up to `ttlMs` (default 60 s) old against a remote PDP whose policies
   * changed, and it is not in the PDP's decision log (pass `decisionLog` to keep one). With `policyDir`, the folder
   * is watched and a change drops the cache (see {@link PlanCacheSettings.watch}).
   *
   * @defaultValue off
   */
  planCache?: PlanCacheSettings | false | undefined;
  /**
   * Ask every hop of one decision in a single OpenID AuthZEN batch request, when the client can send one (a
   * `@cerbos/grpc` client, or any with `accessEvaluationBatch`) and the PDP serves it (Cerbos ≥ 0.48). `false`: one
   * `checkResources` per hop, in parallel, as with any other client.
   *
   * @remarks
   * AuthZEN answers carry no Cerbos call id: a batched hop's `cerbosCallId` is `""`, and its audit-log entry is found
   * by the decision's `requestId` and the hop's principal id. Turn batching off if you join logs on call ids.
   *
   * @defaultValue `true`
   */
  batch?: boolean | undefined;
}

/** A guard's plan cache, as its owner sees it (see {@link GuardOptions.planCache}). */
export interface GuardPlanCache {
  /** Resolves once the policy folder has been read: from then on hops can be answered from memory. */
  readonly ready: Promise<void>;
  /** Counters since the last clear. */
  stats(): PlanCacheStats;
}

/** Options for {@link Guard.forUser}. */
export interface UserOptions {
  /** Limits for the whole chain, e.g. the user's session expiry or the tools this app ever exposes. */
  scope?: Scope | undefined;
  /**
   * Sent with every check of the chain, its agents' included: the user's JWT (`{ jwt: { token, keySetId? } }`), which
   * the PDP verifies against its `auxData.jwt` key sets and hands to policies as `request.auxData.jwt`. Checks that
   * carry it are sent one `checkResources` per hop; plans are cached per token.
   *
   * @defaultValue none
   */
  auxData?: AuxData | undefined;
}

/** Creates delegation chains that authorize every hop with Cerbos. */
export interface Guard {
  /**
   * Starts a chain at a user, who acts directly until they delegate. The user is taken as given, roles and
   * attributes included: the caller vouches for them. To have the guard's `user` resolver say who the user is, use
   * {@link Guard.resolveUser}.
   */
  forUser(user: ActorInput, options?: UserOptions): Delegation;
  /**
   * Starts a chain at a user named by id (or `{ id }`), completed by the guard's `user` resolver: its roles and
   * attributes come from the resolver alone, never from the caller.
   *
   * @remarks
   * Rejects with {@link IdentityError} when the resolver does not know the id (`identity_unknown`), fails or runs out
   * of time (`identity_unavailable`), or answers with a profile that is not valid (`identity_invalid`). Without a
   * `user` resolver it accepts only a full {@link ActorInput}, as `forUser` does.
   *
   * @example
   * ```ts
   * import { createGuard, directoryResolver } from "hopguard";
   *
   * const guard = createGuard({ client: pdp.client, identities: directoryResolver("./people.json") });
   * const alice = await guard.resolveUser("alice"); // roles and attributes from people.json
   * const scribe = await alice.delegate("scribe"); // so is the agent's
   * const decision = await scribe.authorize({ server: "filesystem", tool: "write_file", arguments: { path } });
   * ```
   */
  resolveUser(user: ActorReference | ActorInput, options?: UserOptions & CallOptions): Promise<Delegation>;
  /** Runs `fn` with `delegation` as the ambient chain for guarded tools; see {@link runAs}. */
  runAs<T>(delegation: Delegation, fn: () => T): T;
  /**
   * Rebuilds the chain a delegation token carries, trusting nothing in it but who the hops are: the token is
   * verified (signature, audience, expiry, revocation; see {@link createTokenVerifier}), then the chain is made again
   * hop by hop with this guard's PDP — every delegation re-authorized, every link's scope required to narrow its
   * parent's, and nothing valid past the token's expiry. With `identities` resolvers, every hop they cover takes its
   * roles and attributes from them, not from the token: a token that carries only ids is enough, and this server's
   * directory decides.
   *
   * @remarks
   * Rejects with {@link TokenError} for a token it will not act on (`token_chain_invalid` when a link widens its
   * parent, loops or goes too deep), {@link DelegationError} `delegation_denied` when this side's policy refuses a
   * delegation, {@link PdpUnavailableError} when the PDP cannot answer, and {@link IdentityError} when a resolver
   * cannot complete a hop.
   */
  fromToken(token: unknown, options?: CallOptions & Pick<UserOptions, "auxData">): Promise<Delegation>;
  /**
   * Drops every plan the guard holds, e.g. after you changed the policies of a remote PDP. Pass the new profile
   * (`readPolicyProfile`) if the policies changed, and a `pauseMs` covering the PDP's own reload. Does nothing
   * without a plan cache.
   */
  clearCache(options?: PlanCacheClearOptions): void;
  /** The plan cache, or `undefined` when the guard has none (see {@link GuardOptions.planCache}). */
  readonly planCache: GuardPlanCache | undefined;
}

/**
 * Creates a guard around a Cerbos client.
 *
 * @example
 * ```ts
 * import { createGuard } from "hopguard";
 * import { startLocalPdp } from "hopguard/local-pdp";
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
    tokens,
    identities,
    planCache: planCacheSettings,
    batch = true,
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
  if (planCacheSettings !== undefined && planCacheSettings !== false && typeof planCacheSettings !== "object") {
    throw new InvalidInputError("options.planCache", "must be plan cache settings ({ policyDir }) or false");
  }
  if (planCacheSettings && typeof client.planResources !== "function") {
    throw new InvalidInputError("options.planCache", "needs a Cerbos client with planResources");
  }
  let watched: ReturnType<typeof watchedPlanCache> | undefined;
  try {
    watched = planCacheSettings ? watchedPlanCache(client, planCacheSettings) : undefined;
  } catch (error) {
    throw new InvalidInputError("options.planCache", error instanceof Error ? error.message : String(error));
  }
  const runtime: GuardRuntime = Object.freeze({
    client,
    timeoutMs,
    mapToolCall,
    tracer: tracer === undefined ? defaultTracer : () => tracer,
    maxResourcesPerRequest,
    identities: identityRuntime(identities, timeoutMs),
    planCache: watched?.cache,
    batch: batch !== false,
  });
  const cache = watched?.cache;
  const planCache: GuardPlanCache | undefined =
    watched === undefined || cache === undefined
      ? undefined
      : Object.freeze({ ready: watched.ready, stats: () => cache.stats() });
  const forUser = (user: ActorInput, userOptions: UserOptions = {}): Delegation =>
    Delegation.root(
      runtime,
      toActor(user, "user"),
      rootScope(userOptions.scope, maxDepth, "scope"),
      toAuxData(userOptions.auxData, "options.auxData"),
    );
  const resolveUser = async (
    user: ActorReference | ActorInput,
    userOptions: UserOptions & CallOptions = {},
  ): Promise<Delegation> => {
    const { scope, signal } = userOptions;
    const auxData = toAuxData(userOptions.auxData, "options.auxData");
    const actor = await runtime.identities.complete("user", actorFields(user), "user", signal);
    return Delegation.root(runtime, actor, rootScope(scope, maxDepth, "scope"), auxData);
  };
  return Object.freeze({
    forUser,
    resolveUser,
    runAs,
    planCache,
    clearCache(clearOptions?: PlanCacheClearOptions): void {
      cache?.clear(clearOptions);
    },
    async fromToken(token: unknown, callOptions: CallOptions & Pick<UserOptions, "auxData"> = {}): Promise<Delegation> {
      if (tokens === undefined) {
        throw new TokenError("token_key_unknown", "this guard has no token verifier (createGuard({ tokens }))");
      }
      const verified = await tokens.verify(token);
      const [user, ...agents] = verified.chain as [TokenHop, ...TokenHop[]];
      // Nothing the token grants outlives the token itself.
      const scopeOf = (hop: TokenHop): Scope => ({
        ...(hop.scope.tools === undefined ? {} : { tools: hop.scope.tools }),
        expiresAt: Math.min(hop.scope.expiresAt ?? Number.POSITIVE_INFINITY, verified.expiresAt),
        maxDepth: hop.scope.maxDepth,
      });
      let delegation: Delegation;
      try {
        // With a user resolver, the token's roles and attributes for the user are ignored (so are the agents', in
        // delegate, with an agent resolver): the token says who, this side's directory says what they may be.
        delegation = await resolveUser(user, {
          scope: scopeOf(user),
          signal: callOptions.signal,
          auxData: callOptions.auxData,
        });
      } catch (error) {
        throw chainError(error, 0);
      }
      for (const [index, agent] of agents.entries()) {
        try {
          delegation = await delegation.delegate(
            { id: agent.id, roles: agent.roles, attr: agent.attr, scope: scopeOf(agent) },
            { signal: callOptions.signal },
          );
        } catch (error) {
          throw chainError(error, index + 1);
        }
      }
      return delegation;
    },
  });
}

/** A rebuilt link that fails for the token's own sake becomes a {@link TokenError}; a policy's deny stays one. */
function chainError(error: unknown, hop: number): unknown {
  if (DelegationError.isInstance(error) && error.code === "delegation_expired") {
    return new TokenError("token_expired", `hop ${hop} of the token: ${error.message}`, { cause: error });
  }
  if (
    InvalidInputError.isInstance(error) ||
    (DelegationError.isInstance(error) && error.code !== "delegation_denied")
  ) {
    return new TokenError("token_chain_invalid", `hop ${hop} of the token: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return error;
}
