import type { ValidatedToolCall } from "../cerbos-request.ts";
import type { CacheOptions } from "./cached-resolver.ts";

/** What a directory knows about a user or an agent: the roles and attributes its policies judge. */
export interface Profile {
  /** At least one Cerbos role. */
  roles: readonly string[];
  /** Attributes for policies (`P.attr`); the names hopguard reserves (`onBehalfOf`, `chain`, ...) are refused. */
  attr?: Record<string, unknown> | undefined;
}

/**
 * A user or an agent as a caller may name it when the guard has a resolver for it: its id alone, or an object whose
 * `id` is looked up. Any `roles` or `attr` given next to the id are ignored once a resolver is set: the directory,
 * not the caller, says who a principal is.
 */
export type ActorReference = string | { id: string; roles?: readonly string[] | undefined; attr?: unknown };

/** What every resolver is handed besides the key it looks up. */
export interface ResolverContext {
  /**
   * Aborted when hopguard stops waiting (the look-up's deadline passed): pass it on to `fetch` and the like. hopguard
   * stops waiting at the deadline whether or not the resolver honours it.
   */
  signal: AbortSignal;
}

/**
 * Looks up a user or an agent by id. Resolve to `undefined` for an id you do not know (hopguard refuses it with
 * `identity_unknown`); throw, or reject, when you cannot tell (`identity_unavailable`). Never guess.
 */
export type ProfileResolver = (
  id: string,
  context: ResolverContext,
) => Profile | undefined | PromiseLike<Profile | undefined>;

/**
 * Looks up attributes of what a tool call touches — the owner of a file, the sensitivity of a record — for policies
 * to read under `R.attr.resource`. Resolve to `undefined` when there is nothing to add; throw when you cannot tell
 * (the call is refused).
 */
export type ResourceResolver = (
  call: ValidatedToolCall,
  context: ResolverContext,
) => Record<string, unknown> | undefined | PromiseLike<Record<string, unknown> | undefined>;

/**
 * Where a guard completes partial identities before it asks the PDP: a request that names only a user id and an
 * agent id is made whole from your directory, and tool calls can gain the attributes of what they touch.
 *
 * @remarks
 * The resolver's answer is authoritative: a resolved principal takes its roles and attributes from the resolver
 * alone, and whatever roles or attributes the caller (or a delegation token) claimed are dropped, so a caller can
 * neither add a role nor set an attribute the directory left out. Keep per-session facts in the scope, not in
 * attributes. Every look-up runs under a deadline and through a cache ({@link cachedResolver}) unless told otherwise;
 * a failure refuses the request before anything reaches the PDP ({@link IdentityError}).
 *
 * hopguard depends on no identity provider: a resolver is any function of an id. For an OIDC provider, call its
 * userinfo endpoint (or the SCIM `/Users/{id}` resource) with `fetch(url, { signal })` and map the answer to
 * `{ roles, attr }`; see {@link directoryResolver} for a file and {@link claimsResolver} for a verified bearer
 * token's claims.
 *
 * @example
 * ```ts
 * import { createGuard, type ProfileResolver } from "hopguard";
 *
 * const scimUser: ProfileResolver = async (id, { signal }) => {
 *   const response = await fetch(`https://idp.example.com/scim/v2/Users/${encodeURIComponent(id)}`, { signal });
 *   if (response.status === 404) return undefined;
 *   if (!response.ok) throw new Error(`SCIM answered ${response.status}`);
 *   const user = (await response.json()) as { roles?: { value: string }[]; "urn:acme:department"?: string };
 *   return { roles: ["user", ...(user.roles ?? []).map((role) => role.value)], attr: { department: user["urn:acme:department"] } };
 * };
 * const guard = createGuard({ client: pdp.client, identities: { user: scimUser } });
 * const alice = await guard.resolveUser("alice");
 * ```
 */
export interface IdentityResolvers {
  /** Completes the user at the root of a chain (`guard.resolveUser`, and every token's user in `fromToken`). */
  user?: ProfileResolver | undefined;
  /** Completes every agent delegated to (`delegation.delegate`, and every token's agents in `fromToken`). */
  agent?: ProfileResolver | undefined;
  /** Adds attributes to every tool call's Cerbos resource, under `R.attr.resource`. */
  resource?: ResourceResolver | undefined;
  /**
   * How long one look-up may take before it fails closed with `identity_unavailable`. Counted apart from the PDP's
   * own deadline.
   *
   * @defaultValue the guard's `timeoutMs`
   */
  timeoutMs?: number | undefined;
  /**
   * How each resolver's answers are cached: `false` to ask every time (the deadline still holds). A resolver already
   * made by {@link cachedResolver} is used as it is.
   *
   * @defaultValue `{ ttlMs: 60_000, maxEntries: 1000 }`; resources are keyed by server, tool, arguments and
   * annotations
   */
  cache?: Omit<CacheOptions<unknown>, "timeoutMs" | "key"> | false | undefined;
}
