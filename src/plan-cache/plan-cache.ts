import { type AuxData, PlanKind, type Principal, type Resource, type Value } from "@cerbos/core";
import { withDeadline } from "../deadline.ts";
import type { PdpClient } from "../pdp-client.ts";
import { canonicalJson, checkKey, plannedResource } from "./plan-key.ts";
import type { PairProfile, PolicyProfile } from "./policy-profile.ts";
import { type CompiledResidual, compileResidual } from "./residual-condition.ts";

/** A resource and action to decide: hopguard's `ToolCallCheck`, or a delegation check. */
export interface PlanCacheCheck {
  readonly resource: Resource;
  readonly action: string;
}

/** A hop's answer from memory: the plan said so (`"plan"`), or its residual condition did (`"residual"`). */
export interface CachedAnswer {
  readonly effect: "EFFECT_ALLOW" | "EFFECT_DENY";
  readonly source: "plan" | "residual";
}

/** A cached decision the PDP never saw, for an audit trail of its own (see {@link PlanCacheOptions.decisionLog}). */
export interface CachedDecisionRecord {
  /** When it was answered, in epoch milliseconds. */
  readonly timestamp: number;
  readonly requestId: string | undefined;
  /** The hop's principal, as it would have been sent. */
  readonly principal: Principal;
  readonly resource: { readonly kind: string; readonly id: string };
  readonly action: string;
  readonly effect: CachedAnswer["effect"];
  readonly source: CachedAnswer["source"];
  /** The resource attributes the answer was computed from (the call's arguments among them). */
  readonly attributes: Readonly<Record<string, Value>>;
}

/** Options for {@link createPlanCache}. */
export interface PlanCacheOptions {
  /** The PDP to ask for plans. */
  client: Pick<PdpClient, "planResources">;
  /**
   * Which (kind, action) pairs a plan may answer, read from exactly the policies the PDP serves (see
   * `readPolicyProfile`). Without it nothing is answered from memory: a plan alone cannot show outputs, clock reads
   * or the `has()` tests it folded away.
   *
   * @defaultValue none: every hop goes live
   */
  policies?: PolicyProfile | undefined;
  /**
   * Set to `false` to turn the cache off: every hop goes live and no plan is requested.
   *
   * @defaultValue `true`
   */
  enabled?: boolean | undefined;
  /**
   * The most plans kept; the least recently used (to the second) goes first.
   *
   * @defaultValue `10000`
   */
  maxEntries?: number | undefined;
  /**
   * How long a plan is trusted, in milliseconds: against a remote PDP, the longest a policy change can take to be
   * seen.
   *
   * @defaultValue `60000`
   */
  ttlMs?: number | undefined;
  /**
   * How long one plan request may take; a plan that comes later is not waited for (that hop goes live).
   *
   * @defaultValue `1000`
   */
  timeoutMs?: number | undefined;
  /**
   * Called with every decision answered from memory, which the PDP's own decision log never sees. Errors it throws
   * are ignored.
   *
   * @defaultValue none
   */
  decisionLog?: ((record: CachedDecisionRecord) => void) | undefined;
  /**
   * The clock for expiry, in epoch milliseconds.
   *
   * @defaultValue `Date.now`
   */
  clock?: (() => number) | undefined;
}

/** What a caller adds to one question. */
export interface PlanCacheRequest {
  /** Sent with a plan request and recorded with a cached decision. */
  requestId?: string | undefined;
  /** Part of the key, and sent with the plan request. */
  auxData?: AuxData | undefined;
  /** Stops waiting for a plan (the hop then goes live); the shared request itself goes on. */
  signal?: AbortSignal | undefined;
}

/** Options for {@link PlanCache.clear}. */
export interface PlanCacheClearOptions {
  /** The profile of the policies the PDP serves from now on. @defaultValue the current one */
  policies?: PolicyProfile | undefined;
  /** How long to answer nothing from memory and ask for no plan, in milliseconds. @defaultValue `0` */
  pauseMs?: number | undefined;
}

/** The plan of one hop, for tool listings: whether the action is allowed always, never, or for some arguments. */
export type PlanSummary = "always-allowed" | "always-denied" | "conditional";

/** Counters since the cache was made (or last cleared). */
export interface PlanCacheStats {
  readonly entries: number;
  /** Answers straight from an unconditional plan. */
  readonly planAnswers: number;
  /** Answers from a residual condition. */
  readonly residualAnswers: number;
  /** Questions the cache could not answer: those hops go live. */
  readonly live: number;
  /** Plan requests sent to the PDP. */
  readonly planRequests: number;
  /** Plan requests that failed (never cached). */
  readonly planErrors: number;
  /** Plan requests on their way now, and those queued by {@link PlanCache.prefetchAll}. */
  readonly inFlight: number;
}

/** A per-hop plan cache; see {@link createPlanCache}. */
export interface PlanCache {
  /** Whether the cache answers at all (`enabled` and a policy profile given). */
  readonly active: boolean;
  /**
   * The hop's answer from memory, or `undefined`: then ask the PDP live. Never sends a request.
   */
  answer(principal: Principal, check: PlanCacheCheck, request?: PlanCacheRequest): CachedAnswer | undefined;
  /**
   * {@link PlanCache.answer} for several hops of one check (a decision's chain): the check's part of the key is
   * worked out once.
   */
  answerAll(
    principals: readonly Principal[],
    check: PlanCacheCheck,
    request?: PlanCacheRequest,
  ): (CachedAnswer | undefined)[];
  /**
   * {@link PlanCache.answer}, fetching the hop's plan first when it is missing and could help (concurrent misses for
   * one key share one request). `undefined`: ask the PDP live. Never rejects: a failed plan request is not cached
   * and the hop goes live.
   */
  lookup(principal: Principal, check: PlanCacheCheck, request?: PlanCacheRequest): Promise<CachedAnswer | undefined>;
  /**
   * The hop's plan kind for a listing, fetched (and kept for the calls that follow) if missing; `undefined` when the
   * cache is off or the plan request failed.
   */
  plan(principal: Principal, check: PlanCacheCheck, request?: PlanCacheRequest): Promise<PlanSummary | undefined>;
  /**
   * The hop's plan kind from memory, for a listing; `undefined` when there is no fresh plan, or its pair is one the
   * cache may not answer (see {@link PlanCacheOptions.policies}). Never sends a request.
   */
  peek(principal: Principal, check: PlanCacheCheck, request?: PlanCacheRequest): PlanSummary | undefined;
  /** {@link PlanCache.peek} for several hops of one check. */
  peekAll(
    principals: readonly Principal[],
    check: PlanCacheCheck,
    request?: PlanCacheRequest,
  ): (PlanSummary | undefined)[];
  /**
   * Starts fetching the hop's plan in the background when it is missing and could answer this call (the pair is
   * cacheable, the call has what its `has()` tests need); does nothing otherwise. For a round that sends the hops
   * {@link PlanCache.answer} could not answer live, so that the next call is answered from memory.
   */
  prefetch(principal: Principal, check: PlanCacheCheck, request?: PlanCacheRequest): void;
  /**
   * Fetches the plans of many hops in the background, `concurrency` at a time (for a listing, so that the listings
   * and calls that follow need no PDP). Plans already held are not asked again; failures are not cached.
   */
  prefetchAll(
    hops: readonly { readonly principal: Principal; readonly check: PlanCacheCheck }[],
    request?: PlanCacheRequest,
    concurrency?: number,
  ): void;
  /**
   * Drops every plan; a plan being fetched is neither kept nor used. When the policies changed, pass the profile
   * read from them and a `pauseMs` covering the PDP's own reload: until then nothing is answered from memory and no
   * plan is asked for, so no plan of the old policies is cached after the clear.
   */
  clear(options?: PlanCacheClearOptions): void;
  stats(): PlanCacheStats;
}

interface Entry {
  readonly kind: PlanSummary;
  /** For a conditional plan whose residual compiled; `undefined` means its hops always go live. */
  readonly residual: CompiledResidual | undefined;
  /** A plan Cerbos reported schema validation errors for: never answers. */
  readonly live: boolean;
  readonly expiresAt: number;
  /** When the entry last moved to the back of the eviction order. */
  touchedAt: number;
}

/**
 * Where an entry is kept: its principal's canonical JSON (one string per frozen principal, so a map hashes it once)
 * and the check's ({@link checkKey}: computed once for every hop of a decision).
 */
interface Key {
  readonly principal: string;
  readonly check: string;
}

interface Stored {
  readonly key: Key;
  readonly entry: Entry;
}

/** How often a hit may move its entry to the back of the eviction order: recency to the second is recent enough. */
const touchIntervalMs = 1000;

/**
 * Creates a plan cache: per hop, Cerbos's query plan for (principal, resource kind, action, known attributes) kept
 * in memory and answered in-process.
 *
 * @remarks
 * An always-allowed or always-denied plan answers from memory; a conditional one through its residual condition,
 * compiled once to a closure, when that can decide (see `compileResidual`). Everything else goes live: a pair whose
 * policies have outputs, read the clock or use `has()` on what a plan cannot see (see `readPolicyProfile`), a call
 * lacking an attribute such a `has()` tests, a missing or null attribute, an operator outside the supported set.
 * Plan requests that fail are never cached.
 *
 * @example
 * ```ts
 * const policies = await readPolicyProfile("./policies");
 * const cache = createPlanCache({ client: pdp.client, policies });
 * const answer = await cache.lookup(principal, { resource, action: "read_file" });
 * if (answer === undefined) {
 *   // ask the PDP live
 * }
 * ```
 */
export function createPlanCache(options: PlanCacheOptions): PlanCache {
  const { client, enabled = true, maxEntries = 10_000, ttlMs = 60_000, timeoutMs = 1000, decisionLog } = options;
  const clock = options.clock ?? Date.now;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError("maxEntries must be a positive integer");
  if (!(ttlMs > 0)) throw new RangeError("ttlMs must be positive");
  let policies = options.policies;
  let generation = 0;
  let pausedUntil = Number.NEGATIVE_INFINITY;
  // Two levels, so that a lookup hashes the short part of its key only: principal → check → entry. `order` holds every
  // entry, least recently used first.
  const index = new Map<string, Map<string, Stored>>();
  const order = new Set<Stored>();
  const pending = new Map<string, Promise<Entry | undefined>>();
  const remove = (stored: Stored): void => {
    order.delete(stored);
    const byCheck = index.get(stored.key.principal);
    if (byCheck?.get(stored.key.check) === stored) {
      byCheck.delete(stored.key.check);
      if (byCheck.size === 0) index.delete(stored.key.principal);
    }
  };
  const store = (key: Key, entry: Entry): void => {
    const existing = index.get(key.principal)?.get(key.check);
    if (existing !== undefined) remove(existing);
    const stored: Stored = { key, entry };
    let byCheck = index.get(key.principal);
    if (byCheck === undefined) {
      byCheck = new Map();
      index.set(key.principal, byCheck);
    }
    byCheck.set(key.check, stored);
    order.add(stored);
    while (order.size > maxEntries) remove(order.values().next().value as Stored);
  };
  const keyOf = (principal: Principal, check: string | undefined): Key | undefined => {
    const principalText = canonicalJson(principal);
    return principalText === undefined || check === undefined ? undefined : { principal: principalText, check };
  };
  const checkKeyOf = (check: PlanCacheCheck, request: PlanCacheRequest | undefined): string | undefined =>
    checkKey(check.resource, check.action, request?.auxData);
  const counters = { planAnswers: 0, residualAnswers: 0, live: 0, planRequests: 0, planErrors: 0 };
  let queued = 0;

  const usable = (check: PlanCacheCheck): PairProfile | undefined => {
    if (!enabled || policies === undefined || clock() < pausedUntil) return undefined;
    const profile = policies.pair(check.resource.kind, check.action);
    if (!profile.cacheable) return undefined;
    const attributes = check.resource.attr ?? {};
    return profile.requiredPaths.every((path) => present(attributes, path)) ? profile : undefined;
  };

  const fresh = (key: Key, now = clock()): Entry | undefined => {
    const stored = index.get(key.principal)?.get(key.check);
    if (stored === undefined) return undefined;
    if (stored.entry.expiresAt <= now) {
      remove(stored);
      return undefined;
    }
    // Least recently used goes first: a hit moves to the back, at most once a second (recency to the second is
    // enough, and this is the hottest path there is).
    if (now - stored.entry.touchedAt >= touchIntervalMs) {
      stored.entry.touchedAt = now;
      order.delete(stored);
      order.add(stored);
    }
    return stored.entry;
  };

  const decide = (
    entry: Entry,
    principal: Principal,
    check: PlanCacheCheck,
    request: PlanCacheRequest | undefined,
  ): CachedAnswer | undefined => {
    let answer: CachedAnswer | undefined;
    if (entry.live) answer = undefined;
    else if (entry.kind === "always-allowed") answer = allowedByPlan;
    else if (entry.kind === "always-denied") answer = deniedByPlan;
    else {
      const attributes = check.resource.attr ?? {};
      const result = entry.residual?.({ id: check.resource.id, attr: attributes });
      answer = result === undefined ? undefined : result ? allowedByResidual : deniedByResidual;
    }
    if (answer === undefined) {
      counters.live++;
      return undefined;
    }
    if (answer.source === "plan") counters.planAnswers++;
    else counters.residualAnswers++;
    if (decisionLog !== undefined) {
      try {
        decisionLog({
          timestamp: clock(),
          requestId: request?.requestId,
          principal,
          resource: { kind: check.resource.kind, id: check.resource.id },
          action: check.action,
          effect: answer.effect,
          source: answer.source,
          attributes: check.resource.attr ?? {},
        });
      } catch {
        // The log is the caller's; a failing one never changes a decision.
      }
    }
    return answer;
  };

  const fetchPlan = (
    key: Key,
    principal: Principal,
    check: PlanCacheCheck,
    request: PlanCacheRequest | undefined,
  ): Promise<Entry | undefined> => {
    const pendingKey = `${key.principal}\n${key.check}`;
    const inFlight = pending.get(pendingKey);
    if (inFlight !== undefined) return inFlight;
    const startedIn = generation;
    // The plan is trusted for ttlMs from when it was asked for: a policy change while it was on its way counts.
    const expiresAt = clock() + ttlMs;
    counters.planRequests++;
    const fetching = withDeadline(timeoutMs, undefined, (signal) =>
      client.planResources(
        {
          principal,
          resource: plannedResource(check.resource),
          action: check.action,
          ...(request?.auxData === undefined ? {} : { auxData: request.auxData }),
          ...(request?.requestId === undefined ? {} : { requestId: request.requestId }),
        },
        { signal },
      ),
    )
      .then((response): Entry | undefined => {
        const entry = toEntry(response, expiresAt);
        // A plan asked for before a clear may come from the policies the clear was for: it is not kept.
        if (entry !== undefined && generation === startedIn) store(key, entry);
        if (entry === undefined) counters.planErrors++;
        return entry;
      })
      .catch(() => {
        counters.planErrors++;
        return undefined;
      })
      .finally(() => {
        if (pending.get(pendingKey) === fetching) pending.delete(pendingKey);
      });
    pending.set(pendingKey, fetching);
    return fetching;
  };

  const answerNow = (
    principal: Principal,
    check: PlanCacheCheck,
    request: PlanCacheRequest | undefined,
    checkText: string | undefined,
    now?: number,
  ): CachedAnswer | undefined => {
    const key = keyOf(principal, checkText);
    const entry = key === undefined ? undefined : fresh(key, now);
    if (entry === undefined) {
      counters.live++;
      return undefined;
    }
    return decide(entry, principal, check, request);
  };

  const peekNow = (principal: Principal, checkText: string | undefined): PlanSummary | undefined => {
    const key = keyOf(principal, checkText);
    const entry = key === undefined ? undefined : fresh(key);
    return entry === undefined || entry.live ? undefined : entry.kind;
  };

  const peekable = (check: PlanCacheCheck): boolean =>
    enabled &&
    policies !== undefined &&
    clock() >= pausedUntil &&
    policies.pair(check.resource.kind, check.action).cacheable;

  const cache: PlanCache = {
    get active() {
      return enabled && policies !== undefined;
    },
    answer(principal, check, request) {
      if (usable(check) === undefined) {
        counters.live++;
        return undefined;
      }
      return answerNow(principal, check, request, checkKeyOf(check, request));
    },
    answerAll(principals, check, request) {
      if (usable(check) === undefined) {
        counters.live += principals.length;
        return principals.map(() => undefined);
      }
      const checkText = checkKeyOf(check, request);
      const now = clock();
      return principals.map((principal) => answerNow(principal, check, request, checkText, now));
    },
    async lookup(principal, check, request) {
      if (usable(check) === undefined) {
        counters.live++;
        return undefined;
      }
      const key = keyOf(principal, checkKeyOf(check, request));
      if (key === undefined) {
        counters.live++;
        return undefined;
      }
      if (fresh(key) === undefined) {
        await untilAborted(fetchPlan(key, principal, check, request), request?.signal);
      }
      // Everything is read again, in one go: a caller's object that changed while the plan was fetched is judged as
      // it is now, under the key it has now.
      return cache.answer(principal, check, request);
    },
    peek(principal, check, request) {
      return peekable(check) ? peekNow(principal, checkKeyOf(check, request)) : undefined;
    },
    peekAll(principals, check, request) {
      if (!peekable(check)) return principals.map(() => undefined);
      const checkText = checkKeyOf(check, request);
      return principals.map((principal) => peekNow(principal, checkText));
    },
    prefetch(principal, check, request) {
      if (usable(check) === undefined) return;
      const key = keyOf(principal, checkKeyOf(check, request));
      if (key === undefined) return;
      const stored = index.get(key.principal)?.get(key.check);
      if (stored === undefined || stored.entry.expiresAt <= clock()) void fetchPlan(key, principal, check, request);
    },
    prefetchAll(hops, request, concurrency = 8) {
      let next = 0;
      queued += hops.length;
      const startedIn = generation;
      const worker = async (): Promise<void> => {
        while (next < hops.length) {
          const item = hops[next++] as (typeof hops)[number];
          queued--;
          // After a clear, the queue is dropped with the plans.
          if (generation !== startedIn) continue;
          await cache.plan(item.principal, item.check, request);
        }
      };
      for (let started = 0; started < Math.min(concurrency, hops.length); started++) void worker();
    },
    async plan(principal, check, request) {
      if (!enabled || clock() < pausedUntil) return undefined;
      const key = keyOf(principal, checkKeyOf(check, request));
      if (key === undefined) return undefined;
      const entry = fresh(key) ?? (await untilAborted(fetchPlan(key, principal, check, request), request?.signal));
      return entry?.kind;
    },
    clear(clearOptions = {}) {
      generation++;
      index.clear();
      order.clear();
      pending.clear();
      if (clearOptions.policies !== undefined) policies = clearOptions.policies;
      pausedUntil = clock() + (clearOptions.pauseMs ?? 0);
      for (const name of Object.keys(counters) as (keyof typeof counters)[]) counters[name] = 0;
    },
    stats() {
      return { entries: order.size, ...counters, inFlight: pending.size + queued };
    },
  };
  return Object.freeze(cache);
}

const allowedByPlan: CachedAnswer = Object.freeze({ effect: "EFFECT_ALLOW", source: "plan" });
const deniedByPlan: CachedAnswer = Object.freeze({ effect: "EFFECT_DENY", source: "plan" });
const allowedByResidual: CachedAnswer = Object.freeze({ effect: "EFFECT_ALLOW", source: "residual" });
const deniedByResidual: CachedAnswer = Object.freeze({ effect: "EFFECT_DENY", source: "residual" });

/** Reads a plan response; `undefined` for anything that is not a well-formed plan (treated as a failed request). */
function toEntry(response: unknown, expiresAt: number): Entry | undefined {
  if (typeof response !== "object" || response === null) return undefined;
  const { kind, validationErrors } = response as { kind?: unknown; validationErrors?: unknown };
  const live = Array.isArray(validationErrors) && validationErrors.length > 0;
  switch (kind) {
    case PlanKind.ALWAYS_ALLOWED:
      return { kind: "always-allowed", residual: undefined, live, expiresAt, touchedAt: Number.NEGATIVE_INFINITY };
    case PlanKind.ALWAYS_DENIED:
      return { kind: "always-denied", residual: undefined, live, expiresAt, touchedAt: Number.NEGATIVE_INFINITY };
    case PlanKind.CONDITIONAL: {
      const condition = (response as { condition?: unknown }).condition;
      if (typeof condition !== "object" || condition === null) return undefined;
      const residual = compileResidual(condition as Parameters<typeof compileResidual>[0]);
      return { kind: "conditional", residual, live, expiresAt, touchedAt: Number.NEGATIVE_INFINITY };
    }
    default:
      return undefined;
  }
}

/** Whether `path` names an attribute that is there (null counts): every step before it a map. */
function present(attributes: Readonly<Record<string, Value>>, path: readonly string[]): boolean {
  let value: Value | undefined = attributes as Record<string, Value>;
  for (const key of path) {
    if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, key)) {
      return false;
    }
    value = (value as Record<string, Value>)[key];
  }
  return true;
}

/** The promise's value, or `undefined` as soon as `signal` aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T | undefined> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((settle) => {
    const onAbort = (): void => settle(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        settle(value);
      },
      () => {
        signal.removeEventListener("abort", onAbort);
        settle(undefined);
      },
    );
  });
}
