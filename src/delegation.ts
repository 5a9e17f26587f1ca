import { randomUUID } from "node:crypto";
import type { AuxData } from "@cerbos/core";
import type { Tracer } from "@opentelemetry/api";
import { type Actor, type ActorInput, deepFreeze, identityKey } from "./actor.ts";
import { type ApprovalAnswer, declinedApproval } from "./approval.ts";
import { listCallableToolsCached } from "./cached-listing.ts";
import {
  delegationCheck,
  type Hop,
  hopPrincipal,
  type ToolCall,
  type ToolCallMapper,
  toolCallSubject,
  type ValidatedToolCall,
  validateToolCall,
} from "./cerbos-request.ts";
import type { Decision, DecisionSubject, HopDecision } from "./decision.ts";
import { type TokenHop, type TokenSigner, tokenScope } from "./delegation-token.ts";
import { DelegationError, InvalidInputError } from "./errors.ts";
import { answerHops } from "./hop-round.ts";
import type { ActorReference } from "./identity/identity-resolvers.ts";
import { actorFields, type IdentityRuntime, withResourceAttributes } from "./identity/identity-runtime.ts";
import type { PdpClient } from "./pdp-client.ts";
import type { PlanCache } from "./plan-cache/plan-cache.ts";
import { type EffectiveScope, narrowScope, type Scope, scopeAdmitsTool } from "./scope.ts";
import {
  activeTraceId,
  recordApprovalSpan,
  recordDecision,
  recordSpan,
  SpanAttributes,
  SpanNames,
  toolCallAttributes,
} from "./telemetry.ts";
import { listCallableTools, type ToolDescriptor } from "./tool-listing.ts";
import { isNoPolicy, warnMissingPolicy } from "./warnings.ts";

/** What a guard shares with every delegation it creates. */
export interface GuardRuntime {
  readonly client: PdpClient;
  readonly timeoutMs: number;
  readonly mapToolCall: ToolCallMapper;
  readonly tracer: () => Tracer;
  readonly maxResourcesPerRequest: number;
  /** The guard's identity resolvers (`createGuard({ identities })`), ready to complete agents and resources. */
  readonly identities: IdentityRuntime;
  /** Whether hops may share one AuthZEN batch request (`createGuard({ batch })`). */
  readonly batch: boolean;
  /** The guard's plan cache (`createGuard({ planCache })`), if any. */
  readonly planCache: PlanCache | undefined;
}

/** The scope of an expired delegation: no tool at all. */
const expired: EffectiveScope = Object.freeze({ tools: Object.freeze([]), expiresAt: 0, maxDepth: 0 });

/** An agent to delegate to, with the scope it asks for. */
export interface AgentInput extends ActorInput {
  /** What the agent may do; it can only narrow the delegating hop's scope. */
  scope?: Scope | undefined;
}

/**
 * An agent named by a guard that has an `agent` resolver: its id alone, or `{ id, scope }`. The resolver gives its
 * roles and attributes; any the caller adds are ignored (see {@link IdentityResolvers}).
 */
export type AgentReference = string | (Exclude<ActorReference, string> & { scope?: Scope | undefined });

/** Per-call options for {@link Delegation.authorize} and {@link Delegation.delegate}. */
export interface CallOptions {
  /** Aborts the PDP checks; an aborted check throws {@link PdpUnavailableError}, never allows. */
  signal?: AbortSignal | undefined;
}

/**
 * An immutable chain of principals — a user and the agents acting for them — that authorizes tool calls by asking
 * the PDP about every hop.
 *
 * @example
 * ```ts
 * const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { department: "engineering" } });
 * const planner = await alice.delegate({ id: "planner", roles: ["agent", "planner"] });
 * const decision = await planner.authorize({ server: "filesystem", tool: "read_file", arguments: { path } });
 * if (!decision.allowed) console.log(decision.reason);
 * ```
 */
export class Delegation {
  /** Principal ids from the user down to the acting agent. */
  readonly chain: readonly string[];
  /** The user the whole chain acts for. */
  readonly user: Actor;
  /** The acting agent; `undefined` at the root, where the user acts directly. */
  readonly agent: Actor | undefined;
  /** The scope this hop holds: its request intersected with every ancestor's. */
  readonly scope: EffectiveScope;
  /** 0 at the root, one more per delegation. */
  readonly depth: number;

  readonly #runtime: GuardRuntime;
  readonly #hops: readonly Hop[];
  readonly #parent: Delegation | undefined;
  readonly #auxData: AuxData | undefined;

  private constructor(
    runtime: GuardRuntime,
    hops: readonly Hop[],
    scope: EffectiveScope,
    parent: Delegation | undefined,
    auxData: AuxData | undefined,
  ) {
    const root = hops[0] as Hop;
    const last = hops[hops.length - 1] as Hop;
    this.#runtime = runtime;
    this.#hops = Object.freeze([...hops]);
    this.#parent = parent;
    this.#auxData = auxData;
    this.chain = Object.freeze(hops.map((hop) => hop.actor.id));
    this.user = root.actor;
    this.agent = last.kind === "agent" ? last.actor : undefined;
    this.scope = scope;
    this.depth = hops.length - 1;
    Object.freeze(this);
  }

  /** @internal Starts a chain at a user; use `guard.forUser`. */
  static root(runtime: GuardRuntime, user: Actor, scope: EffectiveScope, auxData?: AuxData): Delegation {
    const principal = hopPrincipal({ actor: user, user, kind: "user", chain: [user.id], scope });
    return new Delegation(
      runtime,
      [deepFreeze({ actor: user, kind: "user", depth: 0, principal })],
      deepFreeze(scope),
      undefined,
      auxData,
    );
  }

  /**
   * True only for a chain made by a hopguard guard (`forUser`, then `delegate`): an object that merely looks like
   * one — say, a forged `{ chain, authorize }` slipped into a framework's context — is not, and is never used.
   */
  static isDelegation(value: unknown): value is Delegation {
    return typeof value === "object" && value !== null && #runtime in value;
  }

  /**
   * Whether this chain was made by delegating, one or more times, from `ancestor` (the very object, not an equal
   * one). Adapters use it to let the deepest chain in effect decide: a sub-agent's chain extends its orchestrator's.
   */
  isDescendantOf(ancestor: Delegation): boolean {
    for (let hop = this.#parent; hop !== undefined; hop = hop.#parent) {
      if (hop === ancestor) return true;
    }
    return false;
  }

  /**
   * Hands the chain on to another agent, if every hop already in it may `delegate` to that agent.
   *
   * @remarks
   * Refuses with a {@link DelegationError} when a hop's policy denies (`delegation_denied`), the requested scope is
   * wider than this one (`scope_widened`), the agent is already in the chain (`delegation_cycle`), the chain would
   * grow past `maxDepth` (`depth_exceeded`), or this delegation has expired (`delegation_expired`).
   * A PDP that cannot answer throws {@link PdpUnavailableError}.
   *
   * When the guard has an `agent` resolver (`createGuard({ identities: { agent } })`), `agent` may be just an id (or
   * `{ id, scope }`): the resolver gives the agent's roles and attributes — its answer replaces any the caller gave —
   * before any PDP check, and an unknown id or a failing resolver throws {@link IdentityError}.
   */
  async delegate(agent: AgentInput | AgentReference, options: CallOptions = {}): Promise<Delegation> {
    return recordSpan({
      name: SpanNames.delegate,
      tracer: this.#runtime.tracer(),
      attributes: () => ({
        ...this.#chainAttributes(),
        [SpanAttributes.delegateTo]: typeof agent === "string" ? agent : String(agent?.id),
      }),
      fn: async (span) => {
        // Read once for the decision: a getter gets no second chance to answer differently.
        const fields = actorFields(agent);
        const actor = await this.#runtime.identities.complete("agent", fields, "agent", options.signal);
        const scope = this.#childScope(actor, fields?.scope as Scope | undefined);
        const requestId = activeTraceId() ?? randomUUID();
        const check = delegationCheck(actor, scope);
        const hops = await answerHops(this.#hops, check, { ...this.#pdp(requestId), signal: options.signal });
        const decision = this.#decide({ type: "delegation", agentId: actor.id }, hops, requestId, check.resource.kind);
        recordDecision(span, decision);
        if (!decision.allowed) {
          throw new DelegationError("delegation_denied", decision.reason, {
            chain: this.chain,
            agentId: actor.id,
            decision,
          });
        }
        const chain = [...this.chain, actor.id];
        const principal = hopPrincipal({ actor, user: this.user, kind: "agent", chain, scope });
        const hop: Hop = deepFreeze({ actor, kind: "agent", depth: chain.length - 1, principal });
        return new Delegation(this.#runtime, [...this.#hops, hop], deepFreeze(scope), this, this.#auxData);
      },
    });
  }

  /**
   * Decides whether this chain may make a tool call: every hop checked — in one AuthZEN batch request when the PDP
   * serves it, else one request per hop in parallel, and from the plan cache where the guard has one — plus the local
   * scope check. Resolves to a {@link Decision} whether allowed or denied; throws only on bad input
   * ({@link InvalidInputError}), when the PDP cannot answer ({@link PdpUnavailableError}), or when the guard's
   * `resource` resolver cannot ({@link IdentityError}: nothing is sent to the PDP then).
   */
  async authorize(call: ToolCall | ValidatedToolCall, options: CallOptions = {}): Promise<Decision> {
    return recordSpan({
      name: SpanNames.authorize,
      tracer: this.#runtime.tracer(),
      attributes: () => this.#chainAttributes(),
      fn: async (span) => {
        // The span names the snapshot, never the caller's object, which could answer differently a second time.
        const validated = validateToolCall(call);
        if (span.isRecording()) span.setAttributes(toolCallAttributes(validated));
        const requestId = activeTraceId() ?? randomUUID();
        // The subject is the snapshot itself (frozen, registered): adapters send exactly what was decided.
        const subject: DecisionSubject = toolCallSubject(validated);
        const outOfScope = this.#scopeRefusal(validated);
        let decision: Decision;
        if (outOfScope === undefined) {
          let check = this.#runtime.mapToolCall(validated);
          // With a `resource` resolver, its answer is part of what the PDP judges; a failure throws before any check.
          const resource = this.#runtime.identities.resource(validated, options.signal);
          if (resource !== undefined) check = withResourceAttributes(check, await resource);
          const hops = await answerHops(this.#hops, check, { ...this.#pdp(requestId), signal: options.signal });
          decision = this.#decide(subject, hops, requestId, check.resource.kind);
        } else {
          decision = this.#refuseByScope(subject, outOfScope, requestId);
        }
        recordDecision(span, decision);
        return decision;
      },
    });
  }

  /**
   * Signs this chain into a delegation token for an MCP server: the user and every agent with their roles,
   * attributes and scope, the audience, a unique id and an expiry no later than this hop's scope (default lifetime
   * 60 seconds). The server verifies it and authorizes every hop again on its own PDP (`guard.fromToken`).
   *
   * @example
   * ```ts
   * const token = await researcher.toToken(signer, { audience: "filesystem" });
   * ```
   */
  async toToken(
    signer: TokenSigner,
    options: { audience: string | readonly string[]; ttlSeconds?: number },
  ): Promise<string> {
    const { audience, ttlSeconds = 60 } = options ?? {};
    if (typeof audience !== "string" && !Array.isArray(audience)) {
      throw new InvalidInputError("options.audience", "must name the server the token is for");
    }
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw new InvalidInputError("options.ttlSeconds", "must be a positive number of seconds");
    }
    if (this.#isExpired())
      throw new InvalidInputError("delegation", `${this.#describe()} expired at ${this.#expiry()}`);
    const lineage: Delegation[] = [];
    for (let link: Delegation | undefined = this; link !== undefined; link = link.#parent) lineage.unshift(link);
    const chain = lineage.map((link): TokenHop => {
      const actor = link.agent ?? link.user;
      return { id: actor.id, roles: [...actor.roles], attr: { ...actor.attr }, scope: tokenScope(link.scope) };
    });
    return signer.sign({ chain, audience, ttlSeconds });
  }

  /**
   * Records a person's answer to the approval an allowed decision asked for, as a `hopguard.approval` span, and
   * returns the decision that stands: `decision` itself when approved, a deny by `"approval"` when not.
   *
   * @remarks
   * Without this span a declined call would leave only the `hopguard.authorize` span that says `allow` with
   * `approval=required`: indistinguishable from one that was approved and ran. Only an allowed decision of this
   * chain can be approved; for any other it throws {@link InvalidInputError}.
   */
  recordApproval(decision: Decision, answer: ApprovalAnswer): Decision {
    if (decision?.allowed !== true || decision.chain.join("\u0000") !== this.chain.join("\u0000")) {
      throw new InvalidInputError("decision", "must be an allowed decision of this chain");
    }
    const approved = answer?.approved === true;
    const approver = typeof answer?.approver === "string" ? answer.approver : undefined;
    const said = typeof answer?.reason === "string" && answer.reason !== "" ? `: ${answer.reason}` : "";
    const standing = approved
      ? decision
      : declinedApproval(
          decision,
          `a person did not approve it${approver === undefined ? "" : ` (${approver})`}${said}`,
        );
    recordApprovalSpan(this.#runtime.tracer(), {
      ...this.#chainAttributes(),
      ...(decision.subject.type === "tool" ? toolCallAttributes(decision.subject) : {}),
      [SpanAttributes.approval]: approved ? "approved" : "declined",
      ...(approver === undefined ? {} : { [SpanAttributes.approver]: approver }),
      [SpanAttributes.decision]: approved ? "allow" : "deny",
      [SpanAttributes.reason]: standing.reason,
      [SpanAttributes.requestId]: decision.requestId,
      ...(approved ? {} : { [SpanAttributes.deniedBy]: "approval" }),
    });
    return standing;
  }

  /**
   * Keeps the tools this chain could call with some arguments, in their order: those its scope admits and that no
   * hop's policy always denies. For hiding tools from a model; every call is still authorized on its own.
   *
   * @remarks
   * O(hops) PDP requests when policies do not look at arguments (see {@link listCallableTools}); none, with a plan
   * cache, for tools whose plans it holds (see {@link listCallableToolsCached}). Throws {@link PdpUnavailableError}
   * when the PDP cannot answer.
   */
  async callableTools<T extends ToolDescriptor>(tools: readonly T[], options: CallOptions = {}): Promise<T[]> {
    return recordSpan({
      name: SpanNames.listTools,
      tracer: this.#runtime.tracer(),
      attributes: () => ({ ...this.#chainAttributes(), [SpanAttributes.toolsOffered]: tools.length }),
      fn: async (span) => {
        const requestId = activeTraceId() ?? randomUUID();
        const scope = this.#isExpired() ? expired : this.scope;
        const { client, mapToolCall, timeoutMs, maxResourcesPerRequest, planCache, batch } = this.#runtime;
        const listing = {
          client,
          mapToolCall,
          timeoutMs,
          batchSize: maxResourcesPerRequest,
          requestId,
          batch,
          auxData: this.#auxData,
        };
        const withSignal = { ...listing, signal: options.signal };
        const indexes =
          planCache?.active === true
            ? await listCallableToolsCached(this.#hops, scope, tools, { ...withSignal, planCache })
            : await listCallableTools(this.#hops, scope, tools, withSignal);
        span.setAttribute(SpanAttributes.toolsCallable, indexes.length);
        return indexes.map((index) => tools[index] as T);
      },
    });
  }

  #childScope(agent: Actor, requested: Scope | undefined): EffectiveScope {
    const facts = { chain: this.chain, agentId: agent.id };
    if (this.#isExpired()) {
      throw new DelegationError("delegation_expired", `${this.#describe()} expired at ${this.#expiry()}`, facts);
    }
    const key = identityKey(agent.id);
    if (this.chain.some((id) => identityKey(id) === key)) {
      throw new DelegationError(
        "delegation_cycle",
        `"${agent.id}" is already in the chain ${this.chain.join(" → ")}`,
        facts,
      );
    }
    const depth = this.depth + 1;
    if (depth > this.scope.maxDepth) {
      throw new DelegationError(
        "depth_exceeded",
        `delegating to "${agent.id}" would reach depth ${depth}; ${this.#describe()} allows ${this.scope.maxDepth}`,
        facts,
      );
    }
    const narrowed = narrowScope(this.scope, requested, "agent.scope");
    if ("field" in narrowed) {
      throw new DelegationError(
        "scope_widened",
        `"${agent.id}" asked for more than ${this.#describe()} holds: ${narrowed.field} ${narrowed.detail}`,
        facts,
      );
    }
    if (narrowed.maxDepth < depth) {
      throw new DelegationError(
        "depth_exceeded",
        `"${agent.id}" would sit at depth ${depth} but asked for maxDepth ${narrowed.maxDepth}`,
        facts,
      );
    }
    if (narrowed.expiresAt !== undefined && narrowed.expiresAt <= Date.now()) {
      throw new DelegationError(
        "delegation_expired",
        `"${agent.id}" asked for a delegation that expired at ${new Date(narrowed.expiresAt).toISOString()}`,
        facts,
      );
    }
    return narrowed;
  }

  #scopeRefusal(call: ValidatedToolCall): string | undefined {
    if (this.#isExpired()) return `${this.#describe()} expired at ${this.#expiry()}`;
    if (!scopeAdmitsTool(this.scope, call.server, call.tool)) {
      return `${call.server}/${call.tool} is outside ${this.#describe()}'s delegated tools [${this.scope.tools?.join(", ")}]`;
    }
    return undefined;
  }

  #refuseByScope(subject: DecisionSubject, reason: string, requestId: string): Decision {
    return deepFreeze({
      allowed: false,
      subject,
      chain: this.chain,
      hops: [],
      deniedBy: "scope",
      reason: `denied by scope: ${reason}`,
      outputs: [],
      requestId,
    });
  }

  #decide(subject: DecisionSubject, hops: HopDecision[], requestId: string, kind: string): Decision {
    const denying = hops.find((hop) => hop.effect !== "EFFECT_ALLOW");
    const what =
      subject.type === "tool" ? `call ${subject.server}/${subject.tool}` : `delegate to "${subject.agentId}"`;
    // No hop's PDP answer found any policy for the kind: almost always a misspelt server name, not a rule.
    const noPolicyAtAll =
      hops.length > 0 &&
      hops.every((hop) => hop.source === "pdp" && hop.effect !== "EFFECT_ALLOW" && isNoPolicy(hop.policy));
    if (noPolicyAtAll) warnMissingPolicy(kind);
    const reason =
      denying === undefined
        ? `allowed: every hop of ${this.chain.join(" → ")} may ${what}`
        : noPolicyAtAll
          ? `no Cerbos policy for resource kind ${kind}: every hop was denied by default (is the server name right?)`
          : `denied by ${denying.kind} "${denying.principalId}" (hop ${denying.depth} of ${this.chain.join(" → ")}): ` +
            `may not ${what}${isNoPolicy(denying.policy) ? " (no policy matched)" : ` (policy ${denying.policy})`}`;
    return deepFreeze({
      allowed: denying === undefined,
      subject,
      chain: this.chain,
      hops,
      deniedBy: denying?.principalId,
      reason,
      outputs: hops.flatMap((hop) => hop.outputs),
      requestId,
    });
  }

  #pdp(requestId: string) {
    const { client, timeoutMs, planCache, batch } = this.#runtime;
    return { client, timeoutMs, requestId, planCache, batch, auxData: this.#auxData };
  }

  #chainAttributes() {
    return {
      [SpanAttributes.userId]: this.user.id,
      [SpanAttributes.chain]: [...this.chain],
      [SpanAttributes.depth]: this.depth,
      ...(this.agent === undefined
        ? {}
        : { [SpanAttributes.agentId]: this.agent.id, [SpanAttributes.agentName]: this.agent.id }),
    };
  }

  #isExpired(): boolean {
    return this.scope.expiresAt !== undefined && this.scope.expiresAt <= Date.now();
  }

  #expiry(): string {
    return this.scope.expiresAt === undefined ? "never" : new Date(this.scope.expiresAt).toISOString();
  }

  #describe(): string {
    return this.agent === undefined ? `user "${this.user.id}"` : `agent "${this.agent.id}"`;
  }
}
