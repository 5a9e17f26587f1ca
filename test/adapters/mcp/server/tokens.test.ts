import { GRPC } from "@cerbos/grpc";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { McpError, SetLevelRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { SpanStatusCode } from "@opentelemetry/api";
import { base64url, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { type GuardMcpServerOptions, guardMcpServer, type McpRefusal } from "../../../../src/adapters/mcp/index.ts";
import {
  createGuard,
  createTokenSigner,
  type Delegation,
  delegationTokenType,
  type HopguardErrorCode,
  SpanAttributes,
  SpanNames,
  type TokenSigner,
} from "../../../../src/index.ts";
import { connectInMemory, filesystemServer } from "../../../support/guarded-server.ts";
import { sharedPdpClient } from "../../../support/pdp.ts";
import { presentingTransport } from "../../../support/presenting-transport.ts";
import { type TokenKeys, tokenIssuer, tokenKeys } from "../../../support/token-keys.ts";
import { memoryTracing } from "../../../support/tracing.ts";
import { alice, bob, planner, researcher } from "../../../support/users.ts";
import { unusedPort } from "../unused-port.ts";

const pdp = sharedPdpClient();
const tracing = memoryTracing();
const host = createGuard({ client: pdp });
const readNotes = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };

let keys: TokenKeys;
let strangerSigner: TokenSigner;
let mallorySigner: TokenSigner;
let researcherChain: Delegation;
let deadPdp: GRPC;

beforeAll(async () => {
  keys = await tokenKeys();
  strangerSigner = createTokenSigner({
    key: (await generateKeyPair("Ed25519")).privateKey,
    kid: "k1",
    issuer: tokenIssuer,
  });
  mallorySigner = createTokenSigner({ key: keys.privateKey, kid: "k1", issuer: "mallory" });
  researcherChain = await (await host.forUser(alice).delegate(planner)).delegate({
    ...researcher,
    scope: { tools: ["filesystem/read_*", "filesystem::resource/*"] },
  });
  deadPdp = new GRPC(`127.0.0.1:${await unusedPort()}`, { tls: false });
});
afterAll(() => deadPdp.close());
beforeEach(() => tracing.reset());

const valid = () => researcherChain.toToken(keys.signer, { audience: "filesystem" });

/** A valid token with its payload edited and its signature left as it was. */
async function tampered(edit: (claims: Record<string, unknown>, chain: unknown[]) => unknown): Promise<string> {
  const [header, payload, signature] = (await valid()).split(".") as [string, string, string];
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
  const edited = edit(claims, claims.hopguard.chain);
  return [header, base64url.encode(JSON.stringify(edited)), signature].join(".");
}

const withChain = (claims: Record<string, unknown>, chain: unknown[]) => ({
  ...claims,
  hopguard: { v: 1, chain },
});

interface Attack {
  readonly name: string;
  readonly token: () => Promise<string | undefined>;
  readonly code: HopguardErrorCode;
  readonly reason: RegExp;
  readonly server?: Partial<GuardMcpServerOptions>;
  readonly authInfo?: AuthInfo;
  /** The server's revocation check (the verifier's `isRevoked`). */
  readonly isRevoked?: () => boolean;
  /** The server's PDP is down: its guard points at a port nothing listens on. */
  readonly pdpDown?: boolean;
}

const attacks: Attack[] = [
  { name: "no token at all", token: async () => undefined, code: "token_missing", reason: /no delegation token/ },
  { name: "an empty token", token: async () => "", code: "token_missing", reason: /no delegation token/ },
  { name: "not a JWT", token: async () => "not.a.token", code: "token_malformed", reason: /malformed/ },
  {
    name: "an expired token",
    token: () =>
      new SignJWT({ hopguard: { v: 1, chain: [{ ...alice, scope: { maxDepth: 5 } }] } })
        .setProtectedHeader({ alg: "Ed25519", typ: delegationTokenType, kid: "k1" })
        .setSubject("alice")
        .setAudience("filesystem")
        .setIssuer(tokenIssuer)
        .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
        .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
        .setJti("old")
        .sign(keys.privateKey),
    code: "token_expired",
    reason: /expired/,
  },
  {
    name: "a token replayed to another server",
    token: () => researcherChain.toToken(keys.signer, { audience: "memory" }),
    code: "token_audience_mismatch",
    reason: /audience/,
  },
  {
    name: "a token from an issuer the server does not trust",
    token: () => researcherChain.toToken(mallorySigner, { audience: "filesystem" }),
    code: "token_issuer_mismatch",
    reason: /issuer/,
  },
  {
    name: "a token signed with another key",
    token: () => researcherChain.toToken(strangerSigner, { audience: "filesystem" }),
    code: "token_signature_invalid",
    reason: /signature/,
  },
  {
    name: "a tampered token (the researcher's scope widened)",
    token: () =>
      tampered((claims, [user, link, last]) =>
        withChain(claims, [user, link, { ...(last as object), scope: { maxDepth: 5 } }]),
      ),
    code: "token_signature_invalid",
    reason: /signature/,
  },
  {
    name: "a token whose chain was re-ordered",
    token: () => tampered((claims, [user, link, last]) => withChain(claims, [user, last, link])),
    code: "token_signature_invalid",
    reason: /signature/,
  },
  {
    name: "a token whose chain was truncated to the planner",
    token: () => tampered((claims, chain) => withChain(claims, chain.slice(0, 2))),
    code: "token_signature_invalid",
    reason: /signature/,
  },
  {
    name: "a token extended by a hop nobody signed",
    token: () =>
      tampered((claims, chain) =>
        withChain(claims, [...chain, { id: "intruder", roles: ["agent"], attr: {}, scope: { maxDepth: 5 } }]),
      ),
    code: "token_signature_invalid",
    reason: /signature/,
  },
  {
    name: "an unsigned token (alg none)",
    token: async () => {
      const [, payload] = (await valid()).split(".");
      return `${base64url.encode(JSON.stringify({ alg: "none", typ: delegationTokenType }))}.${payload}.`;
    },
    code: "token_algorithm_not_allowed",
    reason: /algorithm/,
  },
  {
    name: "a revoked token",
    token: valid,
    code: "token_revoked",
    reason: /revoked/,
    isRevoked: () => true,
  },
  {
    name: "a token whose revocation cannot be checked",
    token: valid,
    code: "token_revocation_unavailable",
    reason: /revocation check failed/,
    isRevoked: () => {
      throw new Error("revocation list unreachable");
    },
  },
  {
    name: "a properly signed chain whose link widens its parent",
    token: async () => {
      const [user, link] = JSON.parse(new TextDecoder().decode(base64url.decode((await valid()).split(".")[1] ?? "")))
        .hopguard.chain;
      return keys.signer.sign({
        chain: [user, link, { id: "researcher", roles: ["agent", "researcher"], attr: {}, scope: { maxDepth: 9 } }],
        audience: "filesystem",
        ttlSeconds: 60,
      });
    },
    code: "token_chain_invalid",
    reason: /hop 2 of the token/,
  },
  {
    name: "a properly signed chain whose delegation this server's policy refuses",
    token: () =>
      keys.signer.sign({
        chain: [
          { id: "alice", roles: ["user"], attr: alice.attr as never, scope: { maxDepth: 5 } },
          { id: "root-agent", roles: ["agent", "admin"], attr: {}, scope: { maxDepth: 5 } },
        ],
        audience: "filesystem",
        ttlSeconds: 60,
      }),
    code: "delegation_denied",
    reason: /may not delegate to "root-agent"/,
  },
  {
    name: "alice's token on a connection authenticated as bob",
    token: valid,
    code: "token_user_mismatch",
    reason: /acts for user "alice" but the request was authenticated as "bob"/,
    server: { user: () => bob },
    authInfo: { token: "bob-key", clientId: "bob", scopes: [] },
  },
  {
    name: "a valid token when the user mapping fails",
    token: valid,
    code: "authorization_failed",
    reason: /could not map the authenticated caller/,
    server: {
      user: () => {
        throw new Error("directory at ldap://10.0.0.7 unreachable");
      },
    },
    authInfo: { token: "alice-key", clientId: "alice", scopes: [] },
  },
  {
    name: "no token, from an authenticated caller the directory does not know",
    token: async () => undefined,
    code: "identity_unknown",
    reason: /mallory/,
    server: {
      user: (authInfo) => authInfo.clientId,
      identities: { user: (id) => (id === "alice" ? { roles: ["user"], attr: alice.attr } : undefined) },
    },
    authInfo: { token: "mallory-key", clientId: "mallory", scopes: [] },
  },
  {
    name: "a valid token when the PDP is down",
    token: valid,
    code: "pdp_unavailable",
    reason: /PDP/,
    pdpDown: true,
    server: { timeoutMs: 500 },
  },
];

function serverOptions(attack: Attack): GuardMcpServerOptions {
  return {
    server: "filesystem",
    client: attack.pdpDown === true ? deadPdp : pdp,
    tokens: keys.verifier(attack.isRevoked === undefined ? {} : { isRevoked: attack.isRevoked }),
    tracer: tracing.tracer,
    ...attack.server,
  };
}

describe("guardMcpServer: token attacks at the server", () => {
  test("control: the researcher's valid token reads alice's notes", async () => {
    const { server, executions } = filesystemServer();
    guardMcpServer(server, { server: "filesystem", client: pdp, tokens: keys.verifier(), tracer: tracing.tracer });
    const token = await valid();
    const client = await connectInMemory(server, (transport) => presentingTransport(transport, () => ({ token })));

    const result = await client.callTool(readNotes);

    expect(result.isError).toBeFalsy();
    expect(executions.map((execution) => execution.chain)).toEqual([["alice", "planner", "researcher"]]);
    await client.close();
  });

  test.each(attacks)("$name is refused ($code): nothing runs, and the refusal and the span say why", async (attack) => {
    const { server, executions } = filesystemServer();
    guardMcpServer(server, serverOptions(attack));
    const token = await attack.token();
    const client = await connectInMemory(server, (transport) =>
      presentingTransport(transport, () => ({ token, authInfo: attack.authInfo })),
    );

    const result = (await client.callTool(readNotes)) as CallToolResult;
    const read = await client.readResource({ uri: "file:///workspace/alice/notes.md" }).then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(executions).toEqual([]);
    expect(result.isError).toBe(true);
    const refusal = result._meta?.["hopguard.dev/refusal"] as McpRefusal;
    expect(refusal.code).toBe(attack.code);
    expect(refusal.reason).toMatch(attack.reason);
    expect(result.content).toEqual([
      { type: "text", text: expect.stringMatching(/^hopguard refused filesystem\/read_file: /) },
    ]);
    expect(read).toBeInstanceOf(McpError);
    expect((read as McpError).data).toMatchObject({ hopguard: { code: attack.code } });
    // The trace says why nothing ran: one refusal span per request, under the request's name.
    const refusals = tracing
      .spans()
      .filter((span) => span.name === SpanNames.authorize && span.attributes[SpanAttributes.toolName] !== undefined);
    expect(refusals.map((span) => span.attributes[SpanAttributes.toolName])).toEqual([
      "read_file",
      "file:///workspace/alice/notes.md",
    ]);
    for (const span of refusals) {
      if (attack.code === "delegation_denied") {
        // A refused delegation is this server's policy deciding, not a failure.
        expect(span.attributes).toMatchObject({
          [SpanAttributes.decision]: "deny",
          [SpanAttributes.deniedBy]: "alice",
        });
      } else {
        expect(span.status).toMatchObject({
          code: SpanStatusCode.ERROR,
          message: expect.stringMatching(attack.reason),
        });
        expect(span.attributes[SpanAttributes.errorType]).toBe(attack.code);
      }
    }
    // What a resolver threw may name internal hosts: it never reaches the caller.
    expect(JSON.stringify([result, (read as McpError).message])).not.toContain("10.0.0.7");
    await client.close();
  });

  test("the token never reaches a handler, not even one that passes without a decision", async () => {
    const server = new Server({ name: "filesystem", version: "0.0.0" }, { capabilities: { logging: {} } });
    guardMcpServer(server, { server: "filesystem", client: pdp, tokens: keys.verifier(), tracer: tracing.tracer });
    const seen: unknown[] = [];
    // Set after the guard, as a low-level server may at any time.
    server.setRequestHandler(SetLevelRequestSchema, (request, extra) => {
      seen.push({ params: request.params, meta: extra._meta });
      return {};
    });
    const token = await valid();
    const client = await connectInMemory(server, (transport) => presentingTransport(transport, () => ({ token })));

    await client.setLoggingLevel("debug");

    expect(seen).toEqual([{ params: { level: "debug", _meta: {} }, meta: {} }]);
    await client.close();
  });
});
