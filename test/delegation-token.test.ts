import { base64url, type CryptoKey, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, test } from "vitest";
import {
  createGuard,
  createTokenSigner,
  createTokenVerifier,
  type Delegation,
  DelegationError,
  delegationTokenType,
  TokenError,
  type TokenErrorCode,
  type TokenSigner,
} from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { alice, planner, researcher } from "./support/users.ts";

const client = sharedPdpClient();
const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
let signer: TokenSigner;
let publicKey: CryptoKey;
let privateKey: CryptoKey;
let otherSigner: TokenSigner;
let chain: Delegation;

beforeAll(async () => {
  const keys = await generateKeyPair("Ed25519");
  publicKey = keys.publicKey;
  privateKey = keys.privateKey;
  signer = createTokenSigner({ key: keys.privateKey, kid: "k1", issuer: "agent-host" });
  otherSigner = createTokenSigner({ key: (await generateKeyPair("Ed25519")).privateKey, kid: "k1" });
  const client = createGuard({ client: sharedPdpClient() });
  chain = await (await client.forUser(alice).delegate(planner)).delegate({
    ...researcher,
    scope: { tools: ["filesystem/read_*"] },
  });
});

function serverGuard(options: Partial<Parameters<typeof createTokenVerifier>[0]> = {}) {
  return createGuard({
    client,
    tokens: createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: "agent-host", ...options }),
  });
}

async function refusal(attempt: Promise<unknown>): Promise<TokenErrorCode> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(TokenError.isInstance(error), `expected a TokenError, got ${String(error)}`).toBe(true);
  return (error as TokenError).code;
}

/** The token's parts, with its payload replaced by `edit(payload)` and the signature left as it was. */
function tampered(token: string, edit: (payload: Record<string, unknown>) => unknown): string {
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  return [header, base64url.encode(JSON.stringify(edit(claims))), signature].join(".");
}

describe("delegation tokens", () => {
  test("a token carries the chain; the server rebuilds it on its own PDP and decides the same", async () => {
    const token = await chain.toToken(signer, { audience: "filesystem" });
    const rebuilt = await serverGuard().fromToken(token);
    expect(rebuilt.chain).toEqual(["alice", "planner", "researcher"]);
    expect(rebuilt.scope.tools).toEqual(["filesystem/read_*"]);
    expect((await rebuilt.authorize(readNotes)).allowed).toBe(true);
    expect(await rebuilt.authorize({ ...readNotes, tool: "write_file" })).toMatchObject({ deniedBy: "scope" });
  });

  test("a token expires no later than the chain's own scope, and the rebuilt chain not after the token", async () => {
    const expiresAt = Date.now() + 30_000;
    const short = await createGuard({ client })
      .forUser(alice)
      .delegate({ ...planner, scope: { expiresAt } });
    const token = await short.toToken(signer, { audience: "filesystem", ttlSeconds: 3600 });
    const claims = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1] ?? "")));
    expect(claims.exp).toBe(Math.floor(expiresAt / 1000));
    const rebuilt = await serverGuard().fromToken(token);
    expect(rebuilt.scope.expiresAt).toBeLessThanOrEqual(claims.exp * 1000);
  });

  test.each<[string, () => Promise<string>, TokenErrorCode]>([
    ["replayed to another server", () => chain.toToken(signer, { audience: "memory" }), "token_audience_mismatch"],
    [
      "signed with another key",
      () => chain.toToken(otherSigner, { audience: "filesystem" }),
      "token_signature_invalid",
    ],
    [
      "with its chain re-ordered",
      async () =>
        tampered(await chain.toToken(signer, { audience: "filesystem" }), (claims) => {
          const body = claims.hopguard as { chain: unknown[] };
          return { ...claims, hopguard: { ...body, chain: [body.chain[0], body.chain[2], body.chain[1]] } };
        }),
      "token_signature_invalid",
    ],
    [
      "with its chain truncated to the planner",
      async () =>
        tampered(await chain.toToken(signer, { audience: "filesystem" }), (claims) => {
          const body = claims.hopguard as { chain: unknown[] };
          return { ...claims, hopguard: { ...body, chain: body.chain.slice(0, 2) } };
        }),
      "token_signature_invalid",
    ],
    [
      "extended by a hop nobody signed",
      async () =>
        tampered(await chain.toToken(signer, { audience: "filesystem" }), (claims) => {
          const body = claims.hopguard as { chain: unknown[] };
          return {
            ...claims,
            hopguard: { ...body, chain: [...body.chain, { id: "x", roles: ["agent"], scope: { maxDepth: 5 } }] },
          };
        }),
      "token_signature_invalid",
    ],
    [
      "unsigned (alg none)",
      async () => {
        const [, payload] = (await chain.toToken(signer, { audience: "filesystem" })).split(".");
        return `${base64url.encode(JSON.stringify({ alg: "none", typ: delegationTokenType }))}.${payload}.`;
      },
      "token_algorithm_not_allowed",
    ],
    ["not a JWT", async () => "not.a.token", "token_malformed"],
  ])("a token %s is refused", async (_name, make, code) => {
    expect(await refusal(serverGuard().fromToken(await make()))).toBe(code);
  });

  test("an expired token is refused, and so is a missing one", async () => {
    const expired = await new SignJWT({ hopguard: { v: 1, chain: [{ ...alice, scope: { maxDepth: 5 } }] } })
      .setProtectedHeader({ alg: "Ed25519", typ: delegationTokenType })
      .setSubject("alice")
      .setAudience("filesystem")
      .setIssuer("agent-host")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .setJti("old")
      .sign(privateKey);
    expect(await refusal(serverGuard().fromToken(expired))).toBe("token_expired");
    expect(await refusal(serverGuard().fromToken(undefined))).toBe("token_missing");
  });

  test("an HS256 token is refused unless the verifier lists HS256", async () => {
    const secret = new TextEncoder().encode("a shared secret of at least thirty-two bytes!");
    const token = await chain.toToken(createTokenSigner({ key: secret, issuer: "agent-host" }), {
      audience: "filesystem",
    });
    expect(await refusal(serverGuard({ keys: secret }).fromToken(token))).toBe("token_algorithm_not_allowed");
    const accepted = await serverGuard({ keys: secret, algorithms: ["HS256"] }).fromToken(token);
    expect(accepted.chain).toEqual(["alice", "planner", "researcher"]);
  });

  test("a revoked token, and one whose revocation check fails, are refused", async () => {
    const token = await chain.toToken(signer, { audience: "filesystem" });
    expect(await refusal(serverGuard({ isRevoked: () => true }).fromToken(token))).toBe("token_revoked");
    const down = serverGuard({
      isRevoked: () => {
        throw new Error("revocation list unreachable");
      },
    });
    expect(await refusal(down.fromToken(token))).toBe("token_revocation_unavailable");
  });

  test("a chain whose link widens its parent is refused even when properly signed", async () => {
    const token = await chain.toToken(signer, { audience: "filesystem" });
    const [user, plannerHop] = JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[1] ?? "")))
      .hopguard.chain;
    const widening = await signer.sign({
      chain: [user, plannerHop, { id: "researcher", roles: ["agent", "researcher"], attr: {}, scope: { maxDepth: 9 } }],
      audience: "filesystem",
      ttlSeconds: 60,
    });
    expect(await refusal(serverGuard().fromToken(widening))).toBe("token_chain_invalid");
  });

  test("the server's own policy decides every delegation again: one it denies is a DelegationError", async () => {
    const admin = await signer.sign({
      chain: [
        { id: "alice", roles: ["user"], attr: alice.attr as never, scope: { maxDepth: 5 } },
        { id: "root-agent", roles: ["agent", "admin"], attr: {}, scope: { maxDepth: 5 } },
      ],
      audience: "filesystem",
      ttlSeconds: 60,
    });
    const error = await serverGuard()
      .fromToken(admin)
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(DelegationError.isInstance(error) && error.code).toBe("delegation_denied");
  });
});
