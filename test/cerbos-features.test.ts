// What Cerbos users expect on principals, carried through every hop: a policy version, a Cerbos policy scope, and
// auxiliary data (the user's JWT), against a PDP of its own.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  createGuard,
  defaultToolCallCheck,
  type Guard,
  InvalidInputError,
  type ToolCall,
  type ToolCallMapper,
} from "../src/index.ts";
import { type LocalPdp, startLocalPdp } from "../src/local-pdp.ts";
import { recordingPdp } from "./support/recording-pdp.ts";
import { alice, planner } from "./support/users.ts";

const policies = fileURLToPath(new URL("../policies/", import.meta.url));
let dir: string;
let pdp: LocalPdp;

const write = (name: string, lines: string[]) => writeFileSync(join(dir, name), `${lines.join("\n")}\n`);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hopguard-cerbos-features-"));
  cpSync(policies, dir, { recursive: true });
  write("mcp_team.yaml", [
    "apiVersion: api.cerbos.dev/v1",
    "resourcePolicy:",
    '  resource: "mcp::team"',
    "  version: default",
    "  rules:",
    '    - actions: ["read"]',
    "      effect: EFFECT_ALLOW",
    '      roles: ["user", "agent"]',
    "      condition:",
    "        match:",
    '          expr: request.auxData.jwt.team == "blue"',
  ]);
  write("alice_default.yaml", [
    "apiVersion: api.cerbos.dev/v1",
    "principalPolicy:",
    '  principal: "alice"',
    "  version: default",
    "  rules: []",
  ]);
  write("alice_v2.yaml", [
    "apiVersion: api.cerbos.dev/v1",
    "principalPolicy:",
    '  principal: "alice"',
    '  version: "v2"',
    "  rules:",
    '    - resource: "mcp::team"',
    "      actions:",
    '        - action: "write"',
    "          effect: EFFECT_ALLOW",
  ]);
  write("alice_acme.yaml", [
    "apiVersion: api.cerbos.dev/v1",
    "principalPolicy:",
    '  principal: "alice"',
    "  version: default",
    '  scope: "acme"',
    "  rules:",
    '    - resource: "mcp::team"',
    "      actions:",
    '        - action: "archive"',
    "          effect: EFFECT_ALLOW",
  ]);
  // Verification off: the test signs its own tokens; a real PDP verifies them against its auxData.jwt key sets.
  pdp = await startLocalPdp({ policyDir: dir, set: { "auxData.jwt.disableVerification": true } });
});

afterAll(async () => {
  await pdp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const jwt = async (team: string) => ({
  jwt: {
    token: await new SignJWT({ team })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("k".repeat(32))),
  },
});
const call = (tool: string): ToolCall => ({ server: "team", tool });
const ways = ["one AuthZEN batch", "one checkResources per hop"] as const;
// Cerbos picks the principal policy's version by the resource's policy version too: the app maps calls to v2.
const toV2: ToolCallMapper = (call) => {
  const check = defaultToolCallCheck(call);
  return { ...check, resource: { ...check.resource, policyVersion: "v2" } };
};
const guardFor = (way: (typeof ways)[number], options: { mapToolCall?: ToolCallMapper } = {}): Guard =>
  createGuard({ client: pdp.client, batch: way === "one AuthZEN batch", ...options });

describe("a principal's Cerbos policy version and scope", () => {
  test.each(ways)("reach the PDP at every hop (%s)", async (way) => {
    const versioned = guardFor(way, { mapToolCall: toV2 }).forUser({ ...alice, policyVersion: "v2" });
    const decision = await versioned.authorize(call("write"));
    expect(decision.allowed).toBe(true);
    expect(decision.hops[0]?.policy).toBe("principal.alice.vv2");

    const guard = guardFor(way);
    const plain = guard.forUser(alice);
    const scoped = guard.forUser({ ...alice, policyScope: "acme" });
    expect((await plain.authorize(call("archive"))).allowed).toBe(false);
    const inScope = await scoped.authorize(call("archive"));
    expect(inScope.allowed).toBe(true);
    expect(inScope.hops[0]?.policy).toBe("principal.alice.vdefault/acme");
    // A delegation's own scope is another thing: the user's Cerbos scope stays the user's.
    const viaPlanner = await scoped.delegate(planner);
    const chained = await viaPlanner.authorize(call("archive"));
    expect(chained.hops.map((hop) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
  });

  test("come from the identity resolver when the guard has one", async () => {
    const guard = createGuard({
      client: pdp.client,
      mapToolCall: toV2,
      identities: { user: async (id) => ({ id, roles: ["user"], attr: { ...alice.attr }, policyVersion: "v2" }) },
    });
    const decision = await (await guard.resolveUser("alice")).authorize(call("write"));
    expect(decision.hops[0]?.policy).toBe("principal.alice.vv2");
  });

  test("that Cerbos would refuse are refused before anything is sent", () => {
    const guard = createGuard({ client: pdp.client });
    for (const bad of [
      { policyVersion: "v-2" },
      { policyVersion: "" },
      { policyScope: ".acme" },
      { policyScope: "a b" },
    ]) {
      expect(() => guard.forUser({ ...alice, ...bad })).toThrow(InvalidInputError);
    }
  });
});

describe("auxData: the user's JWT with every check", () => {
  test.each(ways)("reaches every hop of the chain, agents included (%s)", async (way) => {
    const guard = guardFor(way);
    const blue = await guard.forUser(alice, { auxData: await jwt("blue") }).delegate(planner);
    const red = await guard.forUser(alice, { auxData: await jwt("red") }).delegate(planner);
    const none = await guard.forUser(alice).delegate(planner);
    expect((await blue.authorize(call("read"))).hops.map((hop) => hop.effect)).toEqual([
      "EFFECT_ALLOW",
      "EFFECT_ALLOW",
    ]);
    expect((await red.authorize(call("read"))).allowed).toBe(false);
    expect((await none.authorize(call("read"))).allowed).toBe(false);
    expect((await blue.callableTools([{ server: "team", tool: "read" }])).length).toBe(1);
    expect((await red.callableTools([{ server: "team", tool: "read" }])).length).toBe(0);
  });

  test("is sent with each check, and keeps plans of one token from answering another's", async () => {
    const recording = recordingPdp(pdp.client);
    const guard = createGuard({ client: recording, planCache: { policyDir: dir, watch: false } });
    await guard.planCache?.ready;
    const blue = guard.forUser(alice, { auxData: await jwt("blue") });
    const red = guard.forUser(alice, { auxData: await jwt("red") });
    await blue.authorize(call("read"));
    expect(recording.checks.at(-1)?.auxData?.jwt?.token).toBeDefined();
    await expect.poll(() => guard.planCache?.stats().inFlight).toBe(0);
    expect(recording.plans.at(-1)?.auxData?.jwt?.token).toBeDefined();
    const fromPlan = await blue.authorize(call("read"));
    expect(fromPlan.hops.map((hop) => [hop.source, hop.effect])).toEqual([["plan", "EFFECT_ALLOW"]]);
    expect((await red.authorize(call("read"))).hops.map((hop) => [hop.source, hop.effect])).toEqual([
      ["pdp", "EFFECT_DENY"],
    ]);
  });

  test("that is malformed is refused before anything is sent", () => {
    const guard = createGuard({ client: pdp.client });
    for (const auxData of [{ jwt: { token: "" } }, { jwt: "token" }, { jwt: { token: "t", keySetId: 3 } }, "jwt"]) {
      expect(() => guard.forUser(alice, { auxData: auxData as never })).toThrow(InvalidInputError);
    }
  });
});
