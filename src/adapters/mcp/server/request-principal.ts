import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { ActorInput } from "../../../actor.ts";
import type { Delegation } from "../../../delegation.ts";
import { HopguardError, TokenError } from "../../../errors.ts";
import type { Guard } from "../../../guard.ts";
import type { ActorReference } from "../../../identity/identity-resolvers.ts";

/**
 * Maps the caller a transport authenticated (`extra.authInfo`, e.g. from a verified bearer token on Streamable
 * HTTP) to the user it acts for, or `undefined` when it acts for no user hopguard should know. Answer a full user,
 * or — when the guard has an `identities.user` resolver — just its id, which the directory completes
 * (`guard.resolveUser`). `claimsResolver()` from `hopguard` fits as it is.
 */
export type McpUserResolver = (
  authInfo: AuthInfo,
) => ActorInput | ActorReference | undefined | PromiseLike<ActorInput | ActorReference | undefined>;

/** Where one request's chain comes from. */
export interface PrincipalSources {
  readonly guard: Guard;
  readonly user: McpUserResolver | undefined;
}

/** What one request presented. */
export interface PresentedIdentity {
  /** Whether `params._meta` held the token key at all (an empty value is still a token, and a missing one). */
  readonly hasToken: boolean;
  readonly token: unknown;
  readonly authInfo: AuthInfo | undefined;
}

/**
 * The chain one request acts for: the delegation token's, rebuilt hop by hop on this server's PDP, or else the
 * authenticated caller's user acting directly. Rejects — the request is then refused — when there is neither, the
 * token fails (any {@link TokenError}), this side's policy refuses one of the token's delegations, the PDP cannot
 * answer, the `user` mapping fails, or the token acts for another user than the one authenticated
 * (`token_user_mismatch`).
 */
export async function requestDelegation(
  sources: PrincipalSources,
  presented: PresentedIdentity,
  signal: AbortSignal | undefined,
): Promise<Delegation> {
  const { guard } = sources;
  const user = await authenticatedUser(sources, presented.authInfo);
  if (presented.hasToken) {
    const delegation = await guard.fromToken(presented.token, { signal });
    if (user !== undefined) {
      // Made and normalized as the token's user was: two spellings of one id are one user, look-alikes are not.
      const expected = (await guard.resolveUser(user, { signal })).user.id;
      if (delegation.user.id !== expected) {
        throw new TokenError(
          "token_user_mismatch",
          `the delegation token acts for user "${delegation.user.id}" but the request was authenticated as "${expected}"`,
        );
      }
    }
    return delegation;
  }
  if (user !== undefined) return guard.resolveUser(user, { signal });
  throw new TokenError(
    "token_missing",
    presented.authInfo === undefined || sources.user === undefined
      ? "the request carries no delegation token and no authenticated user"
      : "the request carries no delegation token and its authenticated caller maps to no user",
  );
}

async function authenticatedUser(
  sources: PrincipalSources,
  authInfo: AuthInfo | undefined,
): Promise<ActorInput | ActorReference | undefined> {
  if (authInfo === undefined || sources.user === undefined) return undefined;
  try {
    return (await sources.user(authInfo)) ?? undefined;
  } catch (error) {
    // hopguard's own errors (claimsResolver's IdentityError) say what failed in words safe to pass on.
    if (HopguardError.isInstance(error)) throw error;
    // Anything else stays in `cause`: it may name internal hosts, and a refusal's text reaches the model.
    throw new HopguardError("authorization_failed", "the server could not map the authenticated caller to a user", {
      cause: error,
    });
  }
}
