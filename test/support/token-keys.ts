import { type CryptoKey, exportJWK, generateKeyPair, type JWK } from "jose";
import {
  createTokenSigner,
  createTokenVerifier,
  type TokenSigner,
  type TokenVerifierOptions,
} from "../../src/index.ts";

/** The agent host's signing key, and what a server needs to verify its tokens. */
export interface TokenKeys {
  readonly signer: TokenSigner;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public key as a JWK (with `kid` and `alg`), for a server in another process. */
  readonly publicJwk: JWK;
  /** A verifier for `audience` (default `"filesystem"`) that accepts this issuer's tokens. */
  verifier(options?: Partial<TokenVerifierOptions>): ReturnType<typeof createTokenVerifier>;
}

/** The issuer every test token names. */
export const tokenIssuer = "agent-host";

/** A fresh Ed25519 key pair for an agent host that signs delegation tokens (`kid` "k1"). */
export async function tokenKeys(): Promise<TokenKeys> {
  const { privateKey, publicKey } = await generateKeyPair("Ed25519", { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "Ed25519", use: "sig" };
  return {
    signer: createTokenSigner({ key: privateKey, kid: "k1", issuer: tokenIssuer }),
    privateKey,
    publicKey,
    publicJwk,
    verifier: (options = {}) =>
      createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: tokenIssuer, ...options }),
  };
}
