import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { SpanStatusCode } from "@opentelemetry/api";
import { type CryptoKey, generateKeyPair } from "jose";
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { guardMcpClient } from "../../src/adapters/mcp/index.ts";
import {
  type ActorInput,
  createGuard,
  createTokenSigner,
  createTokenVerifier,
  type DirectoryData,
  decideToolCall,
  directoryResolver,
  type GuardOptions,
  IdentityError,
  type IdentityErrorCode,
  type IdentityResolvers,
  InvalidInputError,
  type Profile,
  SpanAttributes,
  SpanNames,
  TokenError,
  type TokenHop,
  type TokenSigner,
} from "../../src/index.ts";
import { type RecordingServer, startRecordingServer } from "../support/mcp.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { type RecordingPdp, recordingPdp } from "../support/recording-pdp.ts";
import { memoryTracing, onlySpan } from "../support/tracing.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "../support/users.ts";

const shared = sharedPdpClient();
const profile = ({ roles, attr }: ActorInput): Profile => ({ roles, attr });
/** The directory of the repo's test users and agents (test/support/users.ts), as an identity provider holds it. */
const people: DirectoryData = {
  users: { alice: profile(alice), bob: profile(bob), ivan: profile(ivanTheIntern) },
  agents: { planner: profile(planner), researcher: profile(researcher), scribe: profile(scribe) },
};
const directory = directoryResolver(people);
const writeNotes = (user: string) => ({
  server: "filesystem",
  tool: "write_file",
  arguments: { path: `/workspace/${user}/notes.md`, content: "x" },
});
const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const never = () => new Promise<never>(() => {});

let pdp: RecordingPdp;
let tracing: ReturnType<typeof memoryTracing>;
beforeEach(() => {
  pdp = recordingPdp(shared);
  tracing = memoryTracing();
});

function guardWith(identities: IdentityResolvers, options: Partial<GuardOptions> = {}) {
  return createGuard({ client: pdp, tracer: tracing.tracer, identities, ...options });
}

async function identityFailure(attempt: Promise<unknown>): Promise<IdentityErrorCode> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(IdentityError.isInstance(error), `expected an IdentityError, got ${String(error)}`).toBe(true);
  return (error as IdentityError).code;
}

describe("identity enrichment: ids alone, completed by the guard's resolvers", () => {
  test("a chain named by ids decides exactly as the chain of full actors does", async () => {
    const enriched = guardWith(directory);
    const plain = createGuard({ client: shared });
    const cases: [ActorInput, ActorInput | undefined][] = [
      [alice, undefined],
      [bob, undefined],
      [ivanTheIntern, undefined],
      [alice, scribe],
      [bob, scribe],
      [alice, planner],
    ];
    const verdicts: string[] = [];
    for (const [user, agent] of cases) {
      const byId = await enriched.resolveUser(user.id);
      const full = plain.forUser(user);
      const [idChain, fullChain] =
        agent === undefined ? [byId, full] : [await byId.delegate(agent.id), await full.delegate(agent)];
      const call = writeNotes(user.id);
      const [fromIds, fromActors] = [await idChain.authorize(call), await fullChain.authorize(call)];
      expect(idChain.user).toEqual(fullChain.user);
      expect(idChain.agent).toEqual(fullChain.agent);
      expect(fromIds.hops.map((hop) => [hop.principalId, hop.effect, hop.policy])).toEqual(
        fromActors.hops.map((hop) => [hop.principalId, hop.effect, hop.policy]),
      );
      verdicts.push(`${idChain.chain.join("→")}: ${fromIds.allowed ? "write" : "no write"}`);
    }
    expect(verdicts).toEqual([
      "alice: write",
      "bob: no write",
      "ivan: no write",
      "alice→scribe: write",
      "bob→scribe: no write",
      "alice→planner: no write",
    ]);
  });

  test("the directory, not the caller, says who a principal is: claimed roles and attributes are dropped", async () => {
    const guard = guardWith(directory);
    const bobClaimingEngineering = await guard.resolveUser({
      id: "bob",
      roles: ["user", "admin"],
      attr: { department: "engineering", workspace: "/workspace/bob" },
    });
    const plannerClaimingWriter = await (await guard.resolveUser("alice")).delegate({
      id: "planner",
      roles: ["agent", "writer"],
      scope: { tools: ["filesystem/*"] },
    });

    expect(bobClaimingEngineering.user).toEqual({ id: "bob", ...profile(bob) });
    expect((await bobClaimingEngineering.authorize(writeNotes("bob"))).allowed).toBe(false);
    expect(plannerClaimingWriter.agent?.roles).toEqual(["agent", "planner"]);
    // The scope the caller asked for is kept: it can only narrow.
    expect(plannerClaimingWriter.scope.tools).toEqual(["filesystem/*"]);
    expect(await plannerClaimingWriter.authorize(writeNotes("alice"))).toMatchObject({
      allowed: false,
      deniedBy: "planner",
    });
    const principals = pdp.checks.map((check) => [check.principal.id, check.principal.roles]);
    expect(principals).toContainEqual(["bob", ["user"]]);
    expect(principals).toContainEqual(["planner", ["agent", "planner"]]);
    expect(JSON.stringify(pdp.checks)).not.toContain("admin");
  });

  test("an unknown id is refused with identity_unknown, and nothing is sent to the PDP", async () => {
    const guard = guardWith(directory);
    expect(await identityFailure(guard.resolveUser("mallory"))).toBe("identity_unknown");
    // An agent id is not a user id, nor the other way round.
    expect(await identityFailure(guard.resolveUser("scribe"))).toBe("identity_unknown");
    const alicesChain = await guard.resolveUser("alice");
    const error = await alicesChain.delegate("ghost-writer").catch((thrown: unknown) => thrown);

    expect(error).toMatchObject({ code: "identity_unknown", kind: "agent", id: "ghost-writer" });
    expect(pdp.checks).toEqual([]);
    const span = onlySpan(tracing.spans(), SpanNames.delegate);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes[SpanAttributes.errorType]).toBe("identity_unknown");
    expect(span.attributes[SpanAttributes.delegateTo]).toBe("ghost-writer");
  });

  test.each([
    ["behind the guard's cache", {}],
    ["with the cache turned off", { cache: false as const }],
  ])(
    "a resolver that never answers fails closed with identity_unavailable (%s); the PDP is never asked",
    async (_case, extra) => {
      const stuckUser = guardWith({ user: never, timeoutMs: 50, ...extra });
      const stuckAgent = guardWith({ ...directory, agent: never, timeoutMs: 50, ...extra });

      expect(await identityFailure(stuckUser.resolveUser("alice"))).toBe("identity_unavailable");
      const error = await (await stuckAgent.resolveUser("alice")).delegate("scribe").catch((thrown: unknown) => thrown);

      expect(error).toMatchObject({ code: "identity_unavailable", kind: "agent", id: "scribe" });
      expect((error as Error).message).toBe('the agent resolver did not answer within 50 ms for "scribe"');
      expect(pdp.checks).toEqual([]);
      expect(onlySpan(tracing.spans(), SpanNames.delegate).attributes[SpanAttributes.errorType]).toBe(
        "identity_unavailable",
      );
    },
  );

  test("a resolver that throws is identity_unavailable; what it threw stays in cause, out of the message", async () => {
    const leak = new Error("ldap://10.0.0.7:636 bind failed for cn=admin,password=hunter2");
    const guard = guardWith({
      user: () => {
        throw leak;
      },
    });
    const error = await guard.resolveUser("alice").catch((thrown: unknown) => thrown);

    expect(error).toMatchObject({ code: "identity_unavailable", kind: "user", id: "alice" });
    expect((error as Error).message).toBe('the user resolver failed for "alice"');
    expect((error as Error).cause).toBe(leak);
  });

  test("a caller's abort stops the look-up", async () => {
    const guard = guardWith({ user: never });
    const controller = new AbortController();
    const pending = guard.resolveUser("alice", { signal: controller.signal });
    controller.abort(new Error("request closed"));
    const error = await pending.catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({
      code: "identity_unavailable",
      message: 'the user resolver look-up for "alice" was aborted',
    });
  });

  test.each<[string, Profile]>([
    ["no roles", { roles: [] }],
    ["a reserved attribute", { roles: ["user"], attr: { onBehalfOf: { id: "root" } } }],
    ["a role with a bidi override", { roles: ["user\u202e"] }],
    ["an attribute JSON cannot carry", { roles: ["user"], attr: { since: 10n } }],
  ])("a profile with %s is identity_invalid", async (_case, bad) => {
    const guard = guardWith({ user: () => bad });
    expect(await identityFailure(guard.resolveUser("alice"))).toBe("identity_invalid");
    expect(pdp.checks).toEqual([]);
  });

  test("an id is checked before any resolver sees it", async () => {
    const asked: string[] = [];
    const guard = guardWith({
      user: (id) => {
        asked.push(id);
        return profile(alice);
      },
    });
    for (const id of ["", " alice", "ali\u200bce", "../admin\n"]) {
      await expect(guard.resolveUser(id)).rejects.toSatisfy(InvalidInputError.isInstance);
    }
    expect(await guard.resolveUser("Jos\u0065\u0301").then((chain) => chain.user.id)).toBe("Jos\u00e9");
    expect(asked).toEqual(["Jos\u00e9"]);
  });

  test("the guard caches each resolver: repeated and concurrent look-ups ask once; cache: false asks every time", async () => {
    const asked: string[] = [];
    const user = (id: string) => {
      asked.push(id);
      return new Promise<Profile>((resolve) => setImmediate(() => resolve(profile(alice))));
    };
    const cached = guardWith({ user });
    await Promise.all(Array.from({ length: 10 }, () => cached.resolveUser("alice")));
    await cached.resolveUser("alice");
    expect(asked).toEqual(["alice"]);

    const uncached = guardWith({ user, cache: false });
    await uncached.resolveUser("alice");
    await uncached.resolveUser("alice");
    expect(asked).toEqual(["alice", "alice", "alice"]);
  });

  test("without a resolver an id alone is bad input, and a full actor is taken as given", async () => {
    const guard = createGuard({ client: pdp });
    await expect(guard.resolveUser("alice")).rejects.toMatchObject({ code: "invalid_input", path: "user.roles" });
    const chain = await guard.resolveUser(alice);
    await expect(chain.delegate("scribe")).rejects.toMatchObject({ code: "invalid_input", path: "agent.roles" });
    await expect(guardWith(directory).resolveUser(42 as never)).rejects.toMatchObject({ path: "user" });
    expect(() => createGuard({ client: pdp, identities: { user: "ldap://x" as never } })).toThrow(
      expect.objectContaining({ path: "options.identities.user" }),
    );
    expect(pdp.checks).toEqual([]);
  });
});

test("IdentityError.isInstance answers for identity codes only, from this copy of hopguard or another", () => {
  const foreign = Object.assign(new Error("unknown"), { code: "identity_unknown", kind: "user", id: "x" });
  Object.defineProperty(foreign, Symbol.for("hopguard.error"), { value: true });
  const own = new IdentityError("identity_invalid", "bad profile", { kind: "agent", id: "scribe" });

  expect([IdentityError.isInstance(foreign), IdentityError.isInstance(own)]).toEqual([true, true]);
  expect(own).toMatchObject({ name: "IdentityError", kind: "agent", id: "scribe" });
  expect(IdentityError.isInstance(new InvalidInputError("user.id", "empty"))).toBe(false);
  expect(InvalidInputError.isInstance(own)).toBe(false);
});

describe("identity enrichment: resource attributes", () => {
  test("what the resource resolver says reaches the PDP under R.attr.resource, beside (never over) the call", async () => {
    const seen: unknown[] = [];
    const guard = guardWith({
      ...directory,
      resource: (call) => {
        seen.push(call);
        return {
          owner: "alice",
          classification: "internal",
          arguments: { path: "/etc/shadow" },
          server: "other",
        };
      },
    });
    const decision = await (await guard.resolveUser("alice")).authorize({ ...readNotes, toolCallId: "call-1" });

    expect(decision.allowed).toBe(true);
    expect(seen).toEqual([
      {
        server: "filesystem",
        tool: "read_file",
        arguments: readNotes.arguments,
        annotations: {},
        toolCallId: "call-1",
      },
    ]);
    expect(pdp.checks).toHaveLength(1);
    expect(pdp.checks[0]?.resources[0]?.resource.attr).toEqual({
      server: "filesystem",
      tool: "read_file",
      arguments: readNotes.arguments,
      annotations: {},
      resource: { owner: "alice", classification: "internal", arguments: { path: "/etc/shadow" }, server: "other" },
    });
  });

  test("resource attributes are cached per call target, whatever the toolCallId", async () => {
    let asked = 0;
    const guard = guardWith({
      resource: () => {
        asked++;
        return undefined;
      },
    });
    const chain = guard.forUser(alice);
    await chain.authorize({ ...readNotes, toolCallId: "a" });
    await chain.authorize({ ...readNotes, toolCallId: "b" });
    await chain.authorize({ ...readNotes, arguments: { path: "/workspace/alice/other.md" } });

    // `undefined` ("nothing to add") is not cached, so each call asks: an empty object reaches the PDP.
    expect(asked).toBe(3);
    expect(pdp.checks.map((check) => check.resources[0]?.resource.attr?.resource)).toEqual([{}, {}, {}]);
  });

  test("a failing resource resolver denies: decideToolCall refuses, the span says why, the PDP is never asked", async () => {
    const guard = guardWith({ ...directory, resource: never, timeoutMs: 50 });
    const chain = await (await guard.resolveUser("alice")).delegate("scribe");

    const outcome = await decideToolCall(chain, writeNotes("alice"));

    expect(outcome).toMatchObject({ type: "denied", error: { code: "identity_unavailable", kind: "resource" } });
    expect(outcome.type === "denied" && outcome.reason).toBe(
      "the resource resolver did not answer within 50 ms for filesystem/write_file",
    );
    expect(pdp.checks.filter((check) => check.resources[0]?.resource.kind === "mcp::filesystem")).toEqual([]);
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.status.code).toBe(SpanStatusCode.ERROR);
    expect(span.attributes[SpanAttributes.errorType]).toBe("identity_unavailable");
    expect(span.attributes[SpanAttributes.decision]).toBe("error");
  });

  test("a resource answer JSON cannot carry is identity_invalid, and a call out of scope never asks the resolver", async () => {
    let asked = 0;
    const guard = guardWith({
      resource: () => {
        asked++;
        return { opened: () => "now" };
      },
    });
    const chain = await guard.forUser(alice).delegate({ ...scribe, scope: { tools: ["filesystem/read_*"] } });

    expect(await identityFailure(chain.authorize(readNotes))).toBe("identity_invalid");
    expect(await chain.authorize(writeNotes("alice"))).toMatchObject({ allowed: false, deniedBy: "scope" });
    expect(asked).toBe(1);
    expect(pdp.checks.filter((check) => check.resources[0]?.resource.kind === "mcp::filesystem")).toEqual([]);
  });
});

describe("identity enrichment across processes: fromToken on the server", () => {
  let signer: TokenSigner;
  let publicKey: CryptoKey;
  beforeAll(async () => {
    const keys = await generateKeyPair("Ed25519");
    publicKey = keys.publicKey;
    signer = createTokenSigner({ key: keys.privateKey, issuer: "agent-host" });
  });
  const tokens = () => createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: "agent-host" });
  const hop = (id: string, attr: Record<string, string> = {}, roles: string[] = []): TokenHop => ({
    id,
    roles,
    attr,
    scope: { maxDepth: 5 },
  });
  const sign = (...chain: TokenHop[]) => signer.sign({ chain, audience: "filesystem", ttlSeconds: 60 });

  test("a token that carries only ids is completed by the server's directory, which decides", async () => {
    const server = guardWith(directory, { tokens: tokens() });

    const alices = await server.fromToken(await sign(hop("alice"), hop("scribe")));
    const bobs = await server.fromToken(await sign(hop("bob"), hop("scribe")));

    expect(alices.user).toEqual({ id: "alice", ...profile(alice) });
    expect(alices.agent).toEqual({ id: "scribe", roles: scribe.roles, attr: {} });
    expect((await alices.authorize(writeNotes("alice"))).allowed).toBe(true);
    expect(await bobs.authorize(writeNotes("bob"))).toMatchObject({ allowed: false, deniedBy: "bob" });
  });

  test("what a token claims about roles and attributes loses to the server's directory", async () => {
    const server = guardWith(directory, { tokens: tokens() });
    const bragging = await sign(
      hop("bob", { department: "engineering", workspace: "/workspace/bob" }, ["user", "admin"]),
      hop("planner", {}, ["agent", "writer"]),
    );

    const chain = await server.fromToken(bragging);

    expect(chain.user.attr.department).toBe("sales");
    expect(chain.agent?.roles).toEqual(["agent", "planner"]);
    expect((await chain.authorize(writeNotes("bob"))).allowed).toBe(false);
  });

  test("an ids-only token is refused by a server without resolvers, and a hop its directory lacks by one with", async () => {
    const token = await sign(hop("alice"), hop("stranger"));

    const bare = await createGuard({ client: pdp, tokens: tokens() })
      .fromToken(token)
      .catch((thrown: unknown) => thrown);
    expect(TokenError.isInstance(bare) && bare.code).toBe("token_chain_invalid");
    const error = await guardWith(directory, { tokens: tokens() })
      .fromToken(token)
      .catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ code: "identity_unknown", kind: "agent", id: "stranger" });
    expect(pdp.checks).toEqual([]);
  });
});

describe("identity enrichment behind an adapter: what runs on the MCP server", () => {
  let server: RecordingServer;
  beforeEach(async () => {
    server = await startRecordingServer();
  });
  afterEach(async () => {
    await server.close();
  });
  const write = { name: "write_file", arguments: { path: "/workspace/alice/notes.md", content: "x" } };

  test("a chain of ids runs what its directory profile allows; a failing resource resolver runs nothing", async () => {
    const working = guardWith(directory);
    const failing = guardWith({
      ...directory,
      resource: () => {
        throw new Error("CMDB down");
      },
    });
    const allowed = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await (await working.resolveUser("alice")).delegate("scribe"),
    });
    const refused = guardMcpClient(server.client, {
      server: "filesystem",
      delegation: await (await failing.resolveUser("alice")).delegate("scribe"),
    });

    const result = (await refused.callTool(write)) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(result.content).toEqual([
      {
        type: "text",
        text: "hopguard refused filesystem/write_file: the resource resolver failed for filesystem/write_file",
      },
    ]);
    expect(server.executed).toEqual([]);
    await allowed.callTool(write);
    expect(server.executed).toEqual(["write_file"]);
  });
});
