import { type Actor, reservedAttributes, toActor } from "../actor.ts";
import { IdentityError, InvalidInputError } from "../errors.ts";

/**
 * A verified bearer token as an MCP server handler sees it (`extra.authInfo`, the MCP SDK's `AuthInfo`): the
 * server's token verifier has already checked it, and put its claims somewhere, usually in `extra`.
 */
export interface BearerAuthInfo {
  readonly token?: string | undefined;
  readonly clientId?: string | undefined;
  readonly scopes?: readonly string[] | undefined;
  readonly expiresAt?: number | undefined;
  readonly extra?: Readonly<Record<string, unknown>> | undefined;
}

/** Options for {@link claimsResolver}. */
export interface ClaimsResolverOptions {
  /**
   * Where the verified claims are in `authInfo`.
   *
   * @defaultValue `authInfo.extra`
   */
  claims?: ((authInfo: BearerAuthInfo) => Readonly<Record<string, unknown>> | undefined) | undefined;
  /**
   * The claim that holds the user id. A claim name is tried as it is first, then as a dotted path
   * (`"realm_access.roles"`), so namespaced claims such as `"https://acme.example/roles"` work too.
   *
   * @defaultValue `"sub"`
   */
  idClaim?: string | undefined;
  /**
   * The claim that holds the user's roles: an array of names, or one space-separated string.
   *
   * @defaultValue `"roles"`
   */
  rolesClaim?: string | undefined;
  /**
   * Roles every user of a verified token holds, before those of `rolesClaim`: hopguard's policies expect `user`.
   *
   * @defaultValue `["user"]`
   */
  baseRoles?: readonly string[] | undefined;
  /**
   * The claims that become attributes: `{ attribute: claim }`, or a list of claims kept under their own names. Only
   * these: a token's other claims (`aud`, `exp`, ...) are not the user's attributes. A claim the token lacks is left
   * out.
   *
   * @defaultValue none
   */
  attributes?: Readonly<Record<string, string>> | readonly string[] | undefined;
  /**
   * The attribute that receives `authInfo.scopes` (the OAuth scopes granted), when set.
   *
   * @defaultValue none
   */
  scopesAttribute?: string | undefined;
}

/** Builds the user a verified bearer token stands for; made by {@link claimsResolver}. */
export type ClaimsResolver = (authInfo: BearerAuthInfo | undefined) => Actor;

/**
 * Reads the user from a verified bearer token's claims: the id from `sub`, roles from a `roles` claim, and the
 * attributes you select. For an MCP server behind OAuth, where the identity provider's access token is the only
 * word on who is calling.
 *
 * @remarks
 * Trusts the claims as they are: call it only with an `authInfo` the server's token verifier produced (the MCP SDK's
 * `requireBearerAuth`, or your own `verifyAccessToken`). Throws {@link IdentityError} — `identity_unknown` when
 * there is no token or no claims, `identity_invalid` when the id or roles are missing or malformed — so a request
 * without a usable identity is refused. The result is a full actor: start a chain with `guard.forUser(actor)`, or,
 * to let your directory decide the roles instead, `guard.resolveUser(actor.id)`.
 *
 * @example
 * ```ts
 * import { claimsResolver, createGuard } from "hopguard";
 *
 * const userOf = claimsResolver({ rolesClaim: "realm_access.roles", attributes: { department: "dept", tenant: "org" } });
 * const guard = createGuard({ client: pdp.client });
 * // in an MCP tool handler: (args, extra) => { const alice = guard.forUser(userOf(extra.authInfo)); ... }
 * const alice = guard.forUser(userOf({ extra: { sub: "alice", realm_access: { roles: ["admin"] }, dept: "engineering" } }));
 * ```
 */
export function claimsResolver(options: ClaimsResolverOptions = {}): ClaimsResolver {
  const {
    claims: claimsOf = (authInfo: BearerAuthInfo) => authInfo.extra,
    idClaim = "sub",
    rolesClaim = "roles",
    baseRoles = ["user"],
    attributes = [],
    scopesAttribute,
  } = options;
  if (typeof claimsOf !== "function") throw new InvalidInputError("options.claims", "must be a function");
  if (!Array.isArray(baseRoles)) throw new InvalidInputError("options.baseRoles", "must be an array of role names");
  const selected: readonly (readonly [string, string])[] = Array.isArray(attributes)
    ? attributes.map((claim: string) => [claim, claim] as const)
    : Object.entries(attributes as Readonly<Record<string, string>>);
  for (const [attribute] of selected) {
    if (reservedAttributes.includes(attribute)) {
      throw new InvalidInputError(`options.attributes.${attribute}`, "is reserved for hopguard's chain attributes");
    }
  }
  const fixedRoles = [...baseRoles];

  return (authInfo) => {
    const claims = typeof authInfo === "object" && authInfo !== null ? claimsOf(authInfo) : undefined;
    if (typeof claims !== "object" || claims === null) {
      throw new IdentityError("identity_unknown", "the request carries no verified bearer token claims", {
        kind: "user",
        id: "",
      });
    }
    const id = claim(claims, idClaim);
    if (typeof id !== "string" || id === "") {
      throw new IdentityError("identity_invalid", `the bearer token has no "${idClaim}" claim to name its user`, {
        kind: "user",
        id: "",
      });
    }
    const granted = claim(claims, rolesClaim);
    const roles =
      granted === undefined
        ? []
        : typeof granted === "string"
          ? granted.split(/\s+/).filter((role) => role !== "")
          : granted;
    const attr: Record<string, unknown> = {};
    for (const [attribute, name] of selected) {
      const value = claim(claims, name);
      if (value !== undefined) attr[attribute] = value;
    }
    if (scopesAttribute !== undefined && Array.isArray(authInfo?.scopes)) attr[scopesAttribute] = [...authInfo.scopes];
    try {
      if (!Array.isArray(roles)) throw new InvalidInputError(`claims.${rolesClaim}`, "must be an array or a string");
      return toActor({ id, roles: [...new Set([...fixedRoles, ...roles])], attr }, "claims");
    } catch (error) {
      throw new IdentityError(
        "identity_invalid",
        `the bearer token's claims do not make a valid user: ${(error as Error).message}`,
        { kind: "user", id },
        { cause: error },
      );
    }
  };
}

/** A claim by its exact name, else by a dotted path through nested objects. */
function claim(claims: Readonly<Record<string, unknown>>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  let value: unknown = claims;
  for (const part of name.split(".")) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}
