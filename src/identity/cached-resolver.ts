import { createHash } from "node:crypto";
import { withDeadline } from "../deadline.ts";
import { InvalidInputError } from "../errors.ts";
import type { ResolverContext } from "./identity-resolvers.ts";

/** Options for {@link cachedResolver}. */
export interface CacheOptions<K> {
  /**
   * How long an answer is reused, in milliseconds. A change in the directory shows up at most this long after it
   * was made.
   *
   * @defaultValue `60_000`
   */
  ttlMs?: number | undefined;
  /**
   * The most answers kept; past it the least recently used one is dropped.
   *
   * @defaultValue `1000`
   */
  maxEntries?: number | undefined;
  /**
   * How long one look-up may run, in milliseconds: enforced here, so a resolver that ignores its abort signal still
   * cannot hold every caller waiting on it. The look-up then rejects and nothing is cached.
   *
   * @defaultValue `1000`
   */
  timeoutMs?: number | undefined;
  /**
   * The cache key of an input.
   *
   * @defaultValue a string input itself; anything else, the SHA-256 of its JSON
   */
  key?: ((input: K) => string) | undefined;
}

/** A resolver with a cache in front of it; made by {@link cachedResolver}. */
export interface CachedResolver<K, V> {
  /**
   * Answers from the cache when it can; otherwise asks the resolver, sharing one request among every caller that asks
   * about the same key meanwhile. `context.signal` stops this caller's wait, not the shared request.
   */
  (input: K, context?: Partial<ResolverContext>): Promise<V | undefined>;
  /** Forgets the answer for `input`, or every answer; a look-up already running is not cached when it ends. */
  invalidate(input?: K): void;
}

/** Resolvers made by {@link cachedResolver}: the guard does not cache them a second time. */
const cachedResolvers = new WeakSet<object>();

/**
 * Puts a cache in front of a resolver: answers are reused for `ttlMs`, at most `maxEntries` are kept (least recently
 * used dropped first), concurrent look-ups of one key share one request, and each request is cut off after
 * `timeoutMs`.
 *
 * @remarks
 * Only answers are cached. A rejection (a resolver that threw, or ran out of time) is never cached, so the next
 * look-up asks again; nor is `undefined` ("unknown id"), so a user added to the directory is recognised at once.
 * A guard already wraps each of its resolvers this way (`createGuard({ identities: { cache } })`); call this yourself
 * to share one cache between guards, to tune one resolver, or to {@link CachedResolver.invalidate} an entry when
 * someone's roles change.
 *
 * @example
 * ```ts
 * import { cachedResolver, createGuard, type Profile } from "hopguard";
 *
 * const user = cachedResolver(
 *   async (id: string, { signal }): Promise<Profile | undefined> => {
 *     const response = await fetch(`https://idp.example.com/users/${encodeURIComponent(id)}`, { signal });
 *     return response.status === 404 ? undefined : ((await response.json()) as Profile);
 *   },
 *   { ttlMs: 30_000, maxEntries: 10_000, timeoutMs: 500 },
 * );
 * const guard = createGuard({ client: pdp.client, identities: { user } });
 * user.invalidate("alice"); // alice's roles changed: ask again next time
 * ```
 */
export function cachedResolver<K, V>(
  resolve: (input: K, context: ResolverContext) => V | undefined | PromiseLike<V | undefined>,
  options: CacheOptions<K> = {},
): CachedResolver<K, V> {
  const { ttlMs = 60_000, maxEntries = 1000, timeoutMs = 1000, key = defaultKey } = options;
  if (typeof resolve !== "function") throw new InvalidInputError("resolve", "must be a function");
  if (!Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new InvalidInputError("options.ttlMs", "must be a number of milliseconds ≥ 0");
  }
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new InvalidInputError("options.maxEntries", "must be a whole number ≥ 1");
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidInputError("options.timeoutMs", "must be a positive number of milliseconds");
  }
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used entry first.
  const entries = new Map<string, { readonly value: V; readonly expiresAt: number }>();
  // A look-up stores its answer only if it is still the key's flight: invalidate removes it, and with it that right.
  const flights = new Map<string, Promise<V | undefined>>();

  const store = (cacheKey: string, value: V): void => {
    entries.delete(cacheKey);
    entries.set(cacheKey, { value, expiresAt: Date.now() + ttlMs });
    for (const oldest of entries.keys()) {
      if (entries.size <= maxEntries) break;
      entries.delete(oldest);
    }
  };

  const lookUp = (input: K, cacheKey: string): Promise<V | undefined> => {
    const flight: Promise<V | undefined> = withDeadline(timeoutMs, undefined, async (signal) =>
      resolve(input, { signal }),
    ).then(
      (value) => {
        if (flights.get(cacheKey) !== flight) return value;
        flights.delete(cacheKey);
        if (value !== undefined) store(cacheKey, value);
        return value;
      },
      (error: unknown) => {
        if (flights.get(cacheKey) === flight) flights.delete(cacheKey);
        throw error;
      },
    );
    flights.set(cacheKey, flight);
    return flight;
  };

  const cached = (input: K, context: Partial<ResolverContext> = {}): Promise<V | undefined> => {
    let cacheKey: string;
    try {
      cacheKey = key(input);
    } catch (error) {
      return Promise.reject(error);
    }
    const hit = entries.get(cacheKey);
    if (hit !== undefined) {
      entries.delete(cacheKey);
      if (hit.expiresAt > Date.now()) {
        entries.set(cacheKey, hit);
        return Promise.resolve(hit.value);
      }
    }
    return untilAborted(flights.get(cacheKey) ?? lookUp(input, cacheKey), context.signal);
  };
  cached.invalidate = (input?: K): void => {
    if (input === undefined) {
      entries.clear();
      flights.clear();
      return;
    }
    const cacheKey = key(input);
    entries.delete(cacheKey);
    flights.delete(cacheKey);
  };
  cachedResolvers.add(cached);
  return cached;
}

/** Whether `resolver` was made by {@link cachedResolver}. */
export function isCachedResolver(resolver: unknown): boolean {
  return typeof resolver === "function" && cachedResolvers.has(resolver);
}

function defaultKey(input: unknown): string {
  if (typeof input === "string") return input;
  return createHash("sha256").update(JSON.stringify(input)).digest("base64url");
}

/** `pending`, or `signal`'s reason as soon as it aborts: one caller giving up does not cancel the shared request. */
function untilAborted<T>(pending: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return pending;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
