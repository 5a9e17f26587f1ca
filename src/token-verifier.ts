import {
  type CryptoKey,
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWK,
  type JWTVerifyGetKey,
  jwtVerify,
  type KeyObject,
} from "jose";
import {
  type DelegationTokenClaims,
  delegationTokenType,
  type TokenAlgorithm,
  type TokenHop,
} from "./delegation-token.ts";
import { InvalidInputError, TokenError, type TokenErrorCode } from "./errors.ts";

/** Where a verifier finds the keys that may have signed a token. */
export type TokenKeys = CryptoKey | KeyObject | JWK | Uint8Array | JSONWebKeySet | URL | JWTVerifyGetKey;

/** Options for {@link createTokenVerifier}. */
export interface TokenVerifierOptions {
  /**
   * The public key(s) tokens must be signed with: one key, a JWK Set (picked by the token's `kid`, for rotation), a
   * JWKS URL, or jose's key resolver. For HS256, the shared secret as bytes.
   */
  keys: TokenKeys;
  /** Who this verifier is: a token whose `aud` does not name it was meant for another server and is refused. */
  audience: string | readonly string[];
  /** The issuer(s) a token must name. @defaultValue any */
  issuer?: string | readonly string[] | undefined;
  /**
   * The algorithms accepted; anything else is refused before its signature is looked at.
   *
   * @defaultValue `["Ed25519", "EdDSA", "ES256"]`: asymmetric only; list `"HS256"` to accept shared-secret tokens
   */
  algorithms?: readonly TokenAlgorithm[] | undefined;
  /** Clock skew tolerated on `exp` and `iat`, in seconds. @defaultValue `5` */
  clockToleranceSeconds?: number | undefined;
  /** The oldest a token may be (by `iat`), in seconds, whatever its `exp`. @defaultValue `300` */
  maxTokenAgeSeconds?: number | undefined;
  /**
   * Asked with each token's `jti` after its signature checked out: `true` refuses it (`token_revoked`). One that
   * throws refuses it too (`token_revocation_unavailable`): a revocation list that cannot be read fails closed.
   *
   * @defaultValue none: no token is revoked
   */
  isRevoked?: ((jti: string, claims: DelegationTokenClaims) => boolean | Promise<boolean>) | undefined;
}

/** A token whose signature, audience, expiry and shape checked out; its chain is still to be re-authorized. */
export interface VerifiedDelegationToken {
  readonly claims: DelegationTokenClaims;
  /** The hops, user first. */
  readonly chain: readonly TokenHop[];
  /** When the token stops being valid, in epoch milliseconds. */
  readonly expiresAt: number;
  /** The id of the key that signed it, if the header named one. */
  readonly kid: string | undefined;
}

/** Checks delegation tokens; made by {@link createTokenVerifier}. */
export interface TokenVerifier {
  /** Resolves to the verified token, or rejects with a {@link TokenError} whose `code` says why not. */
  verify(token: unknown): Promise<VerifiedDelegationToken>;
}

const maxTokenLength = 16 * 1024;
const maxHops = 32;
const defaultAlgorithms: readonly TokenAlgorithm[] = ["Ed25519", "EdDSA", "ES256"];

/**
 * Creates a verifier for delegation tokens, for a guard's `tokens` option.
 *
 * @remarks
 * It checks the signature (only with the listed algorithms), `typ`, audience, issuer, expiry, age and the chain's
 * shape (hop 0 is the `sub`ject user; ids, roles and attributes are well formed), then asks `isRevoked`. It does not
 * trust the chain: `guard.fromToken` rebuilds it hop by hop, so that each link must only narrow its parent and every
 * delegation is authorized again on this side's PDP.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { keys, audience, issuer, isRevoked } = options;
  const { clockToleranceSeconds = 5, maxTokenAgeSeconds = 300, algorithms = defaultAlgorithms } = options;
  if (keys === undefined || keys === null) throw new InvalidInputError("options.keys", "must name the signing keys");
  if (typeof audience !== "string" && !Array.isArray(audience)) {
    throw new InvalidInputError("options.audience", "must name this server");
  }
  const key = keyResolver(keys);
  const verifyOptions = {
    algorithms: [...algorithms],
    audience: typeof audience === "string" ? audience : [...audience],
    ...(issuer === undefined ? {} : { issuer: typeof issuer === "string" ? issuer : [...issuer] }),
    typ: delegationTokenType,
    clockTolerance: clockToleranceSeconds,
    maxTokenAge: maxTokenAgeSeconds,
    requiredClaims: ["exp", "iat", "jti", "sub"],
  };

  return Object.freeze({
    async verify(token: unknown): Promise<VerifiedDelegationToken> {
      if (token === undefined || token === null || token === "") {
        throw new TokenError("token_missing", "no delegation token was presented");
      }
      if (typeof token !== "string" || token.length > maxTokenLength) {
        throw new TokenError(
          "token_malformed",
          `a delegation token is a JWT string of at most ${maxTokenLength} characters`,
        );
      }
      let verified: Awaited<ReturnType<typeof jwtVerify>>;
      try {
        verified = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], verifyOptions);
      } catch (error) {
        throw toTokenError(error);
      }
      const claims = toClaims(verified.payload);
      if (isRevoked !== undefined) {
        let revoked: boolean;
        try {
          revoked = (await isRevoked(claims.jti, claims)) !== false;
        } catch (error) {
          throw new TokenError("token_revocation_unavailable", `the revocation check failed: ${messageOf(error)}`, {
            cause: error,
          });
        }
        if (revoked) throw new TokenError("token_revoked", `token ${claims.jti} was revoked`);
      }
      return Object.freeze({
        claims,
        chain: claims.hopguard.chain,
        expiresAt: claims.exp * 1000,
        kid: typeof verified.protectedHeader.kid === "string" ? verified.protectedHeader.kid : undefined,
      });
    },
  });
}

function keyResolver(keys: TokenKeys): TokenKeys {
  if (keys instanceof URL) return createRemoteJWKSet(keys);
  if (typeof keys === "object" && Array.isArray((keys as JSONWebKeySet).keys)) {
    return createLocalJWKSet(keys as JSONWebKeySet);
  }
  return keys;
}

/** The payload's own shape: signed is not the same as well formed. */
function toClaims(payload: Record<string, unknown>): DelegationTokenClaims {
  const body = payload.hopguard as { v?: unknown; chain?: unknown } | undefined;
  const chain = body?.chain;
  if (typeof body !== "object" || body === null || body.v !== 1 || !Array.isArray(chain)) {
    throw new TokenError("token_chain_invalid", "the token carries no hopguard chain (v1)");
  }
  if (chain.length === 0 || chain.length > maxHops) {
    throw new TokenError("token_chain_invalid", `the chain must hold 1 to ${maxHops} hops`);
  }
  chain.forEach((hop: unknown, index) => {
    const { id, roles, attr, scope } = (hop ?? {}) as Record<string, unknown>;
    const wellFormed =
      typeof id === "string" &&
      Array.isArray(roles) &&
      (attr === undefined || (typeof attr === "object" && attr !== null && !Array.isArray(attr))) &&
      typeof scope === "object" &&
      scope !== null &&
      typeof (scope as { maxDepth?: unknown }).maxDepth === "number";
    if (!wellFormed) throw new TokenError("token_chain_invalid", `hop ${index} is not { id, roles, attr, scope }`);
  });
  if ((chain[0] as TokenHop).id !== payload.sub) {
    throw new TokenError("token_chain_invalid", "the chain does not start at the token's subject");
  }
  return Object.freeze(payload as unknown as DelegationTokenClaims);
}

function toTokenError(error: unknown): TokenError {
  const code = tokenErrorCode(error);
  return new TokenError(
    code,
    `delegation token refused (${code.replace("token_", "").replaceAll("_", " ")}): ${messageOf(error)}`,
    {
      cause: error,
    },
  );
}

function tokenErrorCode(error: unknown): TokenErrorCode {
  if (error instanceof errors.JWTExpired) return "token_expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return "token_audience_mismatch";
    if (error.claim === "iss") return "token_issuer_mismatch";
    if (error.claim === "nbf" || (error.claim === "iat" && error.reason === "check_failed"))
      return "token_not_yet_valid";
    return "token_malformed";
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "token_signature_invalid";
  if (error instanceof errors.JOSEAlgNotAllowed) return "token_algorithm_not_allowed";
  if (error instanceof errors.JWKSNoMatchingKey) return "token_key_unknown";
  // Anything else — a JWS that is not one, a key of the wrong type (jose throws a TypeError), a JWKS that cannot be
  // fetched — is a token hopguard cannot vouch for.
  return "token_malformed";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
