import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Effect, PlanKind, type Principal, type Resource, type Value } from "@cerbos/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalPdp, startLocalPdp } from "../../src/local-pdp.ts";
import { createPlanCache, type PlanCache, readPolicyProfile } from "../../src/plan-cache/index.ts";

// One rule per action, each exercising an operator (or a trap) on the call's arguments, served by a PDP of its own.
const allowWhen: Record<string, string> = {
  eq: 'R.attr.arguments.s == "a"',
  ne: 'R.attr.arguments.s != "a"',
  lt_number: "R.attr.arguments.n < 3",
  le_number: "R.attr.arguments.n <= 3.5",
  gt_number: "R.attr.arguments.n > -1",
  ge_number: "R.attr.arguments.n >= 2",
  lt_string: 'R.attr.arguments.s < "m"',
  in_constant: 'R.attr.arguments.s in ["a", "b", 1, true]',
  in_list: '"x" in R.attr.arguments.tags',
  in_map: '"k" in R.attr.arguments.m',
  in_map_replacement: '"\\uFFFD" in R.attr.arguments.m',
  starts_with: 'R.attr.arguments.s.startsWith("a")',
  ends_with: 'R.attr.arguments.s.endsWith("z")',
  contains: 'R.attr.arguments.s.contains("..")',
  size_string: "size(R.attr.arguments.s) == 2",
  size_list: "size(R.attr.arguments.tags) > 1",
  size_map: "size(R.attr.arguments.m) == 1",
  index_list: 'R.attr.arguments.tags[0] == "x"',
  index_map: 'R.attr.arguments.m["k"] == "v"',
  nested: 'R.attr.arguments.m.k == "v"',
  all: 'R.attr.arguments.tags.all(t, t.startsWith("a"))',
  exists: 'R.attr.arguments.tags.exists(t, t == "x")',
  exists_one: 'R.attr.arguments.tags.exists_one(t, t == "x")',
  intersection: 'hasIntersection(R.attr.arguments.tags, ["a", "x"])',
  bool: "R.attr.arguments.b",
  not: "!R.attr.arguments.b",
  and_or: '(R.attr.arguments.s == "a" || R.attr.arguments.n > 3) && !(R.attr.arguments.b == true)',
  list_equal: 'R.attr.arguments.tags == ["a", "x"]',
  ternary: '(has(R.attr.arguments.s) ? R.attr.arguments.s : "") == "a"',
  // Not in the supported set: always live.
  map_equal: 'R.attr.arguments.m == {"k": "v"}',
  matches: 'R.attr.arguments.s.matches("^a+$")',
  lower: 'R.attr.arguments.s.lowerAscii() == "a"',
  add: "R.attr.arguments.n + 1 == 3",
  index_computed: 'R.attr.arguments.tags[R.attr.arguments.n] == "x"',
  filter: 'size(R.attr.arguments.tags.filter(t, t == "x")) == 1',
  globals: 'G.env == "prod" && R.attr.arguments.s == "a"',
  // Traps: the planner folds these away, so the pair must go live (or need the attribute present).
  clock: 'now() < timestamp("2999-01-01T00:00:00Z")',
  clock_and_argument: 'R.attr.arguments.s == "a" && now() > timestamp("2000-01-01T00:00:00Z")',
  has_only: "has(R.attr.arguments.confirm)",
  has_or: 'has(R.attr.arguments.confirm) || R.attr.arguments.s == "a"',
  has_deep: 'has(R.attr.arguments.m.k) && R.attr.arguments.s != "z"',
  has_in_lambda: "R.attr.arguments.tags.all(t, has(t.name))",
  has_top_level: "has(R.attr.owner)",
};
const supported = Object.keys(allowWhen).slice(0, Object.keys(allowWhen).indexOf("map_equal"));
const neverCached = [
  "map_equal",
  "matches",
  "lower",
  "add",
  "index_computed",
  "filter",
  "globals",
  "clock",
  "clock_and_argument",
];

const policy = {
  apiVersion: "api.cerbos.dev/v1",
  resourcePolicy: {
    resource: "mcp::ops",
    version: "default",
    rules: [
      ...Object.entries(allowWhen).map(([action, expr]) => ({
        name: action,
        actions: [action],
        effect: "EFFECT_ALLOW",
        roles: ["*"],
        condition: { match: { expr } },
      })),
      { name: "not_bad", actions: ["deny_wins"], effect: "EFFECT_ALLOW", roles: ["*"] },
      {
        name: "bad",
        actions: ["deny_wins"],
        effect: "EFFECT_DENY",
        roles: ["*"],
        condition: { match: { expr: 'R.attr.arguments.s.startsWith("bad")' } },
      },
      {
        name: "approve_first",
        actions: ["with_output"],
        effect: "EFFECT_ALLOW",
        roles: ["*"],
        output: { when: { ruleActivated: '{"approval": "required"}' } },
      },
      { name: "forget_nothing", actions: ["unless_confirmed"], effect: "EFFECT_ALLOW", roles: ["*"] },
      {
        name: "confirm_first",
        actions: ["unless_confirmed"],
        effect: "EFFECT_DENY",
        roles: ["*"],
        condition: { match: { expr: "!has(R.attr.arguments.confirm)" } },
      },
    ],
  },
};
const actions = [...Object.keys(allowWhen), "deny_wins", "with_output", "unless_confirmed"];

const text = fc.constantFrom(
  "a",
  "b",
  "m",
  "z",
  "az",
  "aa",
  "bad",
  "badx",
  "..",
  "a..b",
  "",
  "x",
  "\u{1F600}",
  "\uFFFF",
);
const loose = fc.oneof(text, fc.integer({ min: -3, max: 6 }), fc.constantFrom(3.5, 2.5, -0, 1e20), fc.boolean());
const anyValue = fc.oneof(
  { weight: 5, arbitrary: loose },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.array(loose, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("k", "name"), loose, { maxKeys: 2 }) },
);
const argumentsArbitrary = fc.record(
  {
    s: fc.oneof({ weight: 4, arbitrary: text }, { weight: 1, arbitrary: anyValue }),
    n: fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(-1, 0, 2, 3, 3.5, 4, 1e20, -0) },
      { weight: 1, arbitrary: anyValue },
    ),
    tags: fc.oneof(
      { weight: 4, arbitrary: fc.array(fc.oneof(text, loose), { maxLength: 3 }) },
      { weight: 1, arbitrary: anyValue },
    ),
    m: fc.oneof(
      {
        weight: 4,
        arbitrary: fc.dictionary(fc.constantFrom("k", "j", "\uFFFD"), fc.oneof(text, loose), { maxKeys: 2 }),
      },
      // Keys the wire rewrites: a lone surrogate becomes U+FFFD, two of them one key.
      { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("k", "\uD800", "\uDFFF"), loose, { maxKeys: 3 }) },
      { weight: 1, arbitrary: anyValue },
    ),
    b: fc.oneof({ weight: 4, arbitrary: fc.boolean() }, { weight: 1, arbitrary: anyValue }),
    confirm: fc.boolean(),
  },
  { requiredKeys: [] },
);

const principal: Principal = Object.freeze({ id: "u", roles: ["user"], attr: Object.freeze({}) });

let dir: string;
let pdp: LocalPdp;
let cache: PlanCache;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hopguard-plan-ops-"));
  writeFileSync(join(dir, "ops.json"), JSON.stringify(policy));
  pdp = await startLocalPdp({ policyDir: dir });
  cache = createPlanCache({ client: pdp.client, policies: await readPolicyProfile(dir) });
});

afterAll(async () => {
  await pdp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Tally {
  answered: number;
  compared: number;
  mismatches: string[];
}

/** Decides every action for `args` through the cache and live; returns what differed. */
async function compare(args: Record<string, unknown>, tally: Map<string, Tally>, attr: Record<string, Value> = {}) {
  const resource = (action: string): Resource => ({
    kind: "mcp::ops",
    id: action,
    attr: { server: "ops", tool: action, arguments: args as Record<string, Value>, annotations: {}, ...attr },
  });
  const [cached, live] = await Promise.all([
    Promise.all(actions.map((action) => cache.lookup(principal, { resource: resource(action), action }))),
    pdp.client.checkResources({
      principal,
      resources: actions.map((action) => ({ resource: resource(action), actions: [action] })),
    }),
  ]);
  actions.forEach((action, index) => {
    const entry = tally.get(action) ?? { answered: 0, compared: 0, mismatches: [] };
    tally.set(action, entry);
    entry.compared++;
    const answer = cached[index];
    if (answer === undefined) return;
    entry.answered++;
    const effect = live.results[index]?.actions[action] === Effect.ALLOW ? "EFFECT_ALLOW" : "EFFECT_DENY";
    if (answer.effect !== effect) entry.mismatches.push(`${action} ${JSON.stringify(args)}: cached ${answer.effect}`);
  });
}

describe("residual conditions evaluated in-process, operator by operator, against a PDP of their own", () => {
  it("answers exactly as the PDP for every supported operator, over random and wrongly typed arguments", async () => {
    const tally = new Map<string, Tally>();
    await fc.assert(
      fc.asyncProperty(argumentsArbitrary, async (args) => {
        await compare(args, tally);
      }),
      { seed: 4242, numRuns: 250 },
    );
    const mismatches = [...tally.values()].flatMap((entry) => entry.mismatches);
    expect(mismatches).toEqual([]);
    for (const action of supported) {
      // Each supported operator really is evaluated in-process for a good share of the calls.
      expect({ action, answeredSome: (tally.get(action)?.answered ?? 0) > 25 }).toEqual({ action, answeredSome: true });
    }
    // has() under the arguments is trusted only when the call has the attribute: then the plan's fold is right.
    expect(tally.get("has_deep")?.answered).toBeGreaterThan(10);
    expect(tally.get("has_deep")?.answered).toBeLessThan(250);
    const compared = [...tally.values()].reduce((sum, entry) => sum + entry.compared, 0);
    expect(compared).toBe(250 * actions.length);
  });

  it("sends unknown operators, functions, globals and every clock-reading rule to the PDP", async () => {
    const tally = new Map<string, Tally>();
    for (const args of [{ s: "a", n: 2, tags: ["x"], m: { k: "v" }, b: false }, { s: "aa" }, {}]) {
      await compare(args, tally);
    }
    for (const action of neverCached) {
      expect({ action, answered: tally.get(action)?.answered }).toEqual({ action, answered: 0 });
    }
    // The planner really did fold the clock away: the plan alone says "always allowed".
    const plan = await pdp.client.planResources({
      principal,
      resource: { kind: "mcp::ops", attr: { server: "ops", tool: "clock", annotations: {} } },
      action: "clock",
    });
    expect(plan.kind).toBe(PlanKind.ALWAYS_ALLOWED);
  });

  it("goes live when a has() the planner folded to true tests an attribute the call lacks", async () => {
    const tally = new Map<string, Tally>();
    await compare({ s: "b" }, tally);
    await compare({ s: "b", confirm: true }, tally, { owner: "u" });
    const plan = await pdp.client.planResources({
      principal,
      resource: { kind: "mcp::ops", attr: { server: "ops", tool: "has_only", annotations: {} } },
      action: "has_only",
    });
    // The plan over-grants: it says "always allowed" whether or not the call has `confirm`.
    expect(plan.kind).toBe(PlanKind.ALWAYS_ALLOWED);
    for (const action of ["has_only", "has_or", "unless_confirmed"]) {
      const entry = tally.get(action);
      // Without the attribute: live (and the PDP denies or allows as the rule says); with it: from the plan.
      expect({ action, answered: entry?.answered, mismatches: entry?.mismatches }).toEqual({
        action,
        answered: 1,
        mismatches: [],
      });
    }
    // has() inside a lambda over the call's own data can never be vouched for, nor has() on a top-level attribute
    // other than the arguments: given to the planner it folds to false, as the plan below shows, not given to true.
    expect(tally.get("has_in_lambda")?.answered).toBe(0);
    expect(tally.get("has_top_level")?.answered).toBe(0);
    const known = await pdp.client.planResources({
      principal,
      resource: { kind: "mcp::ops", attr: { server: "ops", tool: "has_top_level", annotations: {}, owner: "u" } },
      action: "has_top_level",
    });
    expect(known.kind).toBe(PlanKind.ALWAYS_DENIED);
    const live = await pdp.client.checkResources({
      principal,
      resources: [
        {
          resource: { kind: "mcp::ops", id: "x", attr: { arguments: {}, annotations: {}, owner: "u" } },
          actions: ["has_top_level"],
        },
      ],
    });
    expect(live.results[0]?.actions.has_top_level).toBe(Effect.ALLOW);
    expect(tally.get("with_output")?.answered).toBe(0);
  });

  it("never answers a pair whose rule has outputs, and the live answer carries them", async () => {
    const check = {
      resource: { kind: "mcp::ops", id: "with_output", attr: { arguments: {}, annotations: {} } },
      action: "with_output",
    };
    const before = cache.stats().planRequests;
    expect(await cache.lookup(principal, check)).toBeUndefined();
    expect(cache.stats().planRequests).toBe(before);
    const live = await pdp.client.checkResources({
      principal,
      resources: [{ resource: check.resource, actions: [check.action] }],
    });
    expect(live.results[0]?.outputs.map((output) => output.value)).toEqual([{ approval: "required" }]);
  });
});
