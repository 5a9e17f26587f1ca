import { randomUUID } from "node:crypto";
import type { Value } from "@cerbos/core";
import { type CryptoKey, type JWK, type KeyObject, SignJWT } from "jose";
import { InvalidInputError } from "./errors.ts";
import type { EffectiveScope } from "./scope.ts";

/** The JWS algorithms hopguard signs and verifies delegation tokens with. */
export type TokenAlgorithm = "Ed25519" | "EdDSA" | "ES256" | "HS256";

/** The media type in every delegation token's `typ` header, so that no other JWT passes for one. */
export const delegationTokenType = "hopguard-delegation+jwt";

/** One hop of a chain as a token carries it: who, with which roles and attributes, holding which scope. */
export interface TokenHop {
  readonly id: string;
  readonly roles: readonly string[];
  readonly attr: Readonly<Record<string, Value>>;
  readonly scope: TokenScope;
}

/** A hop's effective scope in a token: tool patterns, expiry in epoch milliseconds, depth limit. */
export interface TokenScope {
  readonly tools?: readonly string[];
  readonly expiresAt?: number;
  readonly maxDepth: number;
}

/** The claims of a delegation token (a JWT): standard ones, plus the whole chain under `hopguard`. */
export interface DelegationTokenClaims {
  /** Who issued it, when the signer names itself. */
  readonly iss?: string;
  /** The MCP server(s) it is for: a server refuses a token meant for another one. */
  readonly aud: string | readonly string[];
  /** The user the chain acts for: `hopguard.chain[0].id`. */
  readonly sub: string;
  /** Issued at, in epoch seconds. */
  readonly iat: number;
  /** Expiry, in epoch seconds: never later than the acting hop's own scope expiry. */
  readonly exp: number;
  /** A unique id, for revocation and audit. */
  readonly jti: string;
  readonly hopguard: { readonly v: 1; readonly chain: readonly TokenHop[] };
}

/** What a {@link TokenSigner} needs to sign one chain. */
export interface TokenSigningRequest {
  readonly chain: readonly TokenHop[];
  /** The server (or servers) the token is for. */
  readonly audience: string | readonly string[];
  /** How long the token lives, in seconds. */
  readonly ttlSeconds: number;
}

/** Signs delegation tokens; made by {@link createTokenSigner}. */
export interface TokenSigner {
  sign(request: TokenSigningRequest): Promise<string>;
}

/** Options for {@link createTokenSigner}. */
export interface TokenSignerOptions {
  /**
   * The private key (an Ed25519 or P-256 `CryptoKey`/`KeyObject`, or a private JWK), or for HS256 the shared secret
   * as bytes. Keep it where only the code that delegates can reach it.
   */
  key: CryptoKey | KeyObject | JWK | Uint8Array;
  /**
   * The algorithm.
   *
   * @defaultValue inferred from the key: `"Ed25519"` for Ed25519 keys, `"ES256"` for P-256, `"HS256"` for bytes
   */
  algorithm?: TokenAlgorithm | undefined;
  /** The key id servers pick the verification key by (key rotation). @defaultValue none */
  kid?: string | undefined;
  /** The issuer (`iss`) servers may require. @defaultValue none */
  issuer?: string | undefined;
}

/**
 * Creates a signer for delegation tokens: JWS compact JWTs with the chain, every hop's roles, attributes and scope, the
 * audience, an expiry and a unique id. Sign with `delegation.toToken(signer, { audience })`.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "jose";
 * import { createTokenSigner } from "hopguard";
 *
 * const { privateKey, publicKey } = await generateKeyPair("Ed25519");
 * const signer = createTokenSigner({ key: privateKey, kid: "2026-11" });
 * const token = await researcher.toToken(signer, { audience: "filesystem" });
 * ```
 */
export function createTokenSigner(options: TokenSignerOptions): TokenSigner {
  const { key, kid, issuer } = options;
  const algorithm = options.algorithm ?? inferAlgorithm(key);
  if (kid !== undefined && (typeof kid !== "string" || kid === "")) {
    throw new InvalidInputError("options.kid", "must be a non-empty string");
  }
  return Object.freeze({
    async sign(request: TokenSigningRequest): Promise<string> {
      const { chain, audience, ttlSeconds } = request;
      const user = chain[0];
      if (user === undefined) throw new InvalidInputError("chain", "must hold at least the user");
      const now = Math.floor(Date.now() / 1000);
      const scopeEnd = chain.at(-1)?.scope.expiresAt;
      const exp = Math.min(
        now + ttlSeconds,
        scopeEnd === undefined ? Number.POSITIVE_INFINITY : Math.floor(scopeEnd / 1000),
      );
      const jwt = new SignJWT({ hopguard: { v: 1, chain } })
        .setProtectedHeader({ alg: algorithm, typ: delegationTokenType, ...(kid === undefined ? {} : { kid }) })
        .setSubject(user.id)
        .setAudience([...(typeof audience === "string" ? [audience] : audience)])
        .setIssuedAt(now)
        .setExpirationTime(exp)
        .setJti(randomUUID());
      if (issuer !== undefined) jwt.setIssuer(issuer);
      return jwt.sign(key);
    },
  });
}

/** A hop's effective scope as a token carries it (JSON: no undefined values). */
export function tokenScope(scope: EffectiveScope): TokenScope {
  return {
    ...(scope.tools === undefined ? {} : { tools: [...scope.tools] }),
    ...(scope.expiresAt === undefined ? {} : { expiresAt: scope.expiresAt }),
    maxDepth: scope.maxDepth,
  };
}

function inferAlgorithm(key: unknown): TokenAlgorithm {
  if (key instanceof Uint8Array) return "HS256";
  const name = (key as { algorithm?: { name?: unknown; namedCurve?: unknown } })?.algorithm;
  const type = (key as { asymmetricKeyType?: unknown })?.asymmetricKeyType;
  const jwk = key as { kty?: unknown; crv?: unknown };
  if (name?.name === "Ed25519" || type === "ed25519" || (jwk?.kty === "OKP" && jwk.crv === "Ed25519")) return "Ed25519";
  if (name?.namedCurve === "P-256" || type === "ec" || (jwk?.kty === "EC" && jwk.crv === "P-256")) return "ES256";
  throw new InvalidInputError("options.algorithm", "cannot be inferred from this key: pass Ed25519, ES256 or HS256");
}
