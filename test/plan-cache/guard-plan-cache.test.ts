// The plan cache wired into a guard (`createGuard({ planCache })`), against the real PDP: the same decisions as a
// guard without one, outputs kept, policy changes seen, and hops it must not answer sent live.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type CachedDecisionRecord,
  createGuard,
  type Decision,
  type Delegation,
  type Guard,
  type PdpClient,
  PdpUnavailableError,
} from "../../src/index.ts";
import { type LocalPdp, startLocalPdp } from "../../src/local-pdp.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { recordingPdp } from "../support/recording-pdp.ts";
import { memoryTracing } from "../support/tracing.ts";
import { alice, planner, researcher, scribe } from "../support/users.ts";
import { type RandomCall, randomCall } from "./differential-harness.ts";

const client = sharedPdpClient();
const policyDir = fileURLToPath(new URL("../../policies/", import.meta.url));

/** Waits until the guard's background plan requests have all come back. */
async function settled(guard: Guard): Promise<void> {
  await vi.waitFor(() => expect(guard.planCache?.stats().inFlight).toBe(0), { timeout: 10_000, interval: 10 });
}

/** What must not differ between a cached and an uncached guard. */
function verdict(decision: Decision) {
  return {
    allowed: decision.allowed,
    deniedBy: decision.deniedBy,
    effects: decision.hops.map((hop) => hop.effect),
    // A denied decision's outputs come and go with Cerbos's rule order (see test/hop-answers/batch-clients.ts).
    outputs: decision.allowed
      ? decision.outputs.map(({ principalId, source, value }) => ({ principalId, source, value }))
      : [],
  };
}

async function chainOf(guard: Guard, ...agents: (typeof planner)[]): Promise<Delegation> {
  let delegation = guard.forUser(alice);
  for (const agent of agents) delegation = await delegation.delegate(agent);
  return delegation;
}

describe("a guard with a plan cache, against the shared PDP", () => {
  let cached: Guard;
  let live: Guard;
  const logged: CachedDecisionRecord[] = [];

  beforeAll(async () => {
    cached = createGuard({
      client,
      timeoutMs: 5000,
      planCache: { policyDir, watch: false, timeoutMs: 5000, decisionLog: (record) => logged.push(record) },
    });
    live = createGuard({ client, timeoutMs: 5000 });
    await cached.planCache?.ready;
  });

  it("decides every call exactly as a guard without one, at every depth, over random arguments", async () => {
    const chains = [[], [planner], [planner, researcher], [planner, scribe]] as const;
    const pairs = await Promise.all(
      chains.map(async (agents) => [await chainOf(cached, ...agents), await chainOf(live, ...agents)] as const),
    );
    const sources = { pdp: 0, plan: 0, residual: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(randomCall, { minLength: 30, maxLength: 30 }), async (calls: RandomCall[]) => {
        // Twice: the first round asks the PDP and fetches plans, the second is answered from them where it can be.
        for (let round = 0; round < 2; round++) {
          for (const [fromCache, fromPdp] of pairs) {
            for (const call of calls) {
              const [mine, theirs] = await Promise.all([fromCache.authorize(call), fromPdp.authorize(call)]);
              expect({ call, ...verdict(mine) }).toEqual({ call, ...verdict(theirs) });
              for (const hop of mine.hops) sources[hop.source]++;
            }
          }
          await settled(cached);
        }
      }),
      { seed: 4242, numRuns: 3, endOnFailure: true },
    );
    // Not vacuous: hops were answered by plans, by residuals and by the PDP alike.
    expect(sources.plan).toBeGreaterThan(100);
    expect(sources.residual).toBeGreaterThan(20);
    expect(sources.pdp).toBeGreaterThan(100);
  });

  it("decides delegations exactly as a guard without one, from memory once it holds their plans", async () => {
    const agents = [
      researcher,
      scribe,
      { id: "admin-bot", roles: ["agent", "admin"] },
      { id: "other-tenant", roles: ["agent"], attr: { tenant: "globex" } },
      { id: "same-tenant", roles: ["agent"], attr: { tenant: "acme" } },
      { id: "another-planner", roles: ["agent", "planner"] },
      { id: "not-an-agent", roles: ["tool"] },
    ];
    const outcome = (promise: Promise<Delegation>) =>
      promise.then(
        (delegation) => `allowed ${delegation.chain.join(">")}`,
        (error: Error & { code?: string }) => `refused ${error.code}`,
      );
    const own = createGuard({ client, planCache: { policyDir, watch: false } });
    await own.planCache?.ready;
    for (let round = 0; round < 3; round++) {
      for (const from of [[], [planner]] as const) {
        const [mine, theirs] = await Promise.all([chainOf(own, ...from), chainOf(live, ...from)]);
        for (const agent of agents) {
          expect([agent.id, await outcome(mine.delegate(agent))]).toEqual([
            agent.id,
            await outcome(theirs.delegate(agent)),
          ]);
        }
      }
      await settled(own);
    }
    // Only delegations were decided: those answered from memory were delegations.
    expect(own.planCache?.stats().planAnswers).toBeGreaterThan(10);
  });

  it("answers a repeated call from memory: no PDP request, every hop says where its answer came from", async () => {
    const recording = recordingPdp(client);
    const tracing = memoryTracing();
    const guard = createGuard({ client: recording, tracer: tracing.tracer, planCache: { policyDir, watch: false } });
    await guard.planCache?.ready;
    const researcherChain = await chainOf(guard, planner, researcher);
    const read = { server: "filesystem", tool: "read_text_file", arguments: { path: "/workspace/alice/a.md" } };
    const first = await researcherChain.authorize(read);
    expect(first.hops.map((hop) => hop.source)).toEqual(["pdp", "pdp", "pdp"]);
    await settled(guard);
    recording.checks.length = 0;
    const again = await researcherChain.authorize({ ...read, arguments: { path: "/workspace/alice/b/c.md" } });
    const outside = await researcherChain.authorize({ ...read, arguments: { path: "/workspace/alice/../bob/x" } });
    expect(recording.checks).toEqual([]);
    expect(again.allowed).toBe(true);
    expect(again.hops.map((hop) => hop.source)).toEqual(["residual", "residual", "residual"]);
    expect(again.hops.every((hop) => hop.policy === "" && hop.cerbosCallId === "")).toBe(true);
    expect(outside.allowed).toBe(false);
    expect(outside.deniedBy).toBe("alice");
    // The audit trail says so too: per hop on the span, and on each hop's event.
    const spans = tracing.spans().filter((span) => span.name === "hopguard.authorize");
    expect(spans.map((span) => span.attributes["hopguard.hop.sources"])).toEqual([
      ["pdp", "pdp", "pdp"],
      ["residual", "residual", "residual"],
      ["residual", "residual", "residual"],
    ]);
    expect(spans[1]?.events.map((event) => event.attributes?.["hopguard.hop.source"])).toEqual([
      "residual",
      "residual",
      "residual",
    ]);
  });

  it("still asks the PDP for a tool whose rule has an output: the approval is on every call", async () => {
    const chain = await chainOf(cached);
    const move = {
      server: "filesystem",
      tool: "move_file",
      arguments: { source: "/workspace/alice/a", destination: "/workspace/alice/b" },
    };
    const decisions: Decision[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      decisions.push(await chain.authorize(move));
      await settled(cached);
    }
    for (const decision of decisions) {
      expect(decision.allowed).toBe(true);
      expect(decision.outputs.length).toBeGreaterThan(0);
      expect(decision.hops.map((hop) => hop.source)).toEqual(["pdp"]);
    }
  });

  it("never answers a principal with changed attributes from another principal's plan", async () => {
    const path = { server: "filesystem", tool: "read_text_file", arguments: { path: "/workspace/alice/notes.md" } };
    const real = cached.forUser(alice);
    await real.authorize(path);
    await settled(cached);
    expect((await real.authorize(path)).hops[0]?.source).toBe("residual");
    // Same id, same roles, another workspace: the key differs, and so does the answer.
    const moved = cached.forUser({ ...alice, attr: { ...alice.attr, workspace: "/workspace/bob" } });
    for (let attempt = 0; attempt < 2; attempt++) {
      const decision = await moved.authorize(path);
      expect(decision.allowed).toBe(false);
      await settled(cached);
    }
  });

  it("logs every decision it answered from memory, which the PDP's own log never sees", async () => {
    logged.length = 0;
    const chain = await chainOf(cached, planner);
    const call = { server: "memory", tool: "search_nodes", arguments: { query: "x" } };
    await chain.authorize(call);
    await settled(cached);
    const decision = await chain.authorize(call);
    expect(decision.hops.map((hop) => hop.source)).toEqual(["plan", "plan"]);
    const mine = logged.filter((record) => record.requestId === decision.requestId);
    expect(mine.map((record) => [record.principal.id, record.action, record.effect, record.source])).toEqual([
      ["alice", "search_nodes", "EFFECT_ALLOW", "plan"],
      ["planner", "search_nodes", "EFFECT_ALLOW", "plan"],
    ]);
  });

  it("never caches a failed plan request: those hops go to the PDP, and are cached once plans come back", async () => {
    let failing = true;
    const flaky: PdpClient = {
      checkResources: (request, options) => client.checkResources(request, options),
      planResources: (request, options) =>
        failing ? Promise.reject(new Error("plan service down")) : client.planResources(request, options),
    };
    const guard = createGuard({ client: flaky, planCache: { policyDir, watch: false } });
    await guard.planCache?.ready;
    const chain = guard.forUser(alice);
    const call = { server: "memory", tool: "read_graph" };
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await chain.authorize(call)).hops[0]?.source).toBe("pdp");
      await settled(guard);
    }
    expect(guard.planCache?.stats()).toMatchObject({ entries: 0, planErrors: 3 });
    failing = false;
    await chain.authorize(call);
    await settled(guard);
    expect((await chain.authorize(call)).hops[0]?.source).toBe("plan");
  });

  it("lists tools from memory once it holds their plans, with the same result and no PDP request", async () => {
    const recording = recordingPdp(client);
    const guard = createGuard({ client: recording, planCache: { policyDir, watch: false } });
    await guard.planCache?.ready;
    const chain = await chainOf(guard, planner, researcher);
    const tools = [
      ...["read_text_file", "write_file", "move_file", "list_allowed_directories", "delete_everything"].map((tool) => ({
        server: "filesystem",
        tool,
      })),
      ...["read_graph", "create_entities", "delete_entities"].map((tool) => ({ server: "memory", tool })),
    ];
    const cold = await chain.callableTools(tools);
    expect(recording.checks.length).toBeGreaterThan(0);
    await settled(guard);
    recording.checks.length = 0;
    recording.plans.length = 0;
    const warm = await chain.callableTools(tools);
    expect(warm).toEqual(cold);
    expect(warm.map((tool) => tool.tool)).toEqual(["read_text_file", "list_allowed_directories", "read_graph"]);
    // move_file's rule has an output, so its plans never answer from memory: it alone is asked again.
    const asked = [...recording.checks.flatMap((check) => check.resources), ...recording.plans].map((request) =>
      "actions" in request ? request.actions[0] : request.action,
    );
    expect(asked.length).toBeGreaterThan(0);
    expect(new Set(asked)).toEqual(new Set(["move_file"]));
  });
});

describe("warm listings", () => {
  it("judge each tool by its server, name and annotations as they are now, whatever an object said before", async () => {
    const guard = createGuard({ client, planCache: { policyDir, watch: false } });
    await guard.planCache?.ready;
    const chain = await chainOf(guard, planner);
    const readOnly = { server: "notes", tool: "search_notes", annotations: { readOnlyHint: true } };
    const destructive = { server: "notes", tool: "search_notes", annotations: { readOnlyHint: false } };
    const names = async (tools: { server: string; tool: string; annotations: Record<string, unknown> }[]) =>
      (await chain.callableTools(tools)).map((tool) => tool.annotations.readOnlyHint);
    for (let round = 0; round < 2; round++) {
      expect(await names([readOnly, destructive])).toEqual([true]);
      await settled(guard);
    }
    // Annotations whose getter answers read-only once, then not: whatever was kept, honest tools are judged as they are.
    let reads = 0;
    const lying = {
      server: "notes",
      tool: "find_notes",
      annotations: {
        get readOnlyHint() {
          reads++;
          return reads === 1;
        },
      },
    };
    // The getter said read-only to the first look and not to the snapshot: judged (and kept) as the snapshot says.
    expect(await chain.callableTools([lying])).toEqual([]);
    expect(reads).toBeGreaterThanOrEqual(2);
    await settled(guard);
    const find = (readOnlyHint: boolean) => ({ server: "notes", tool: "find_notes", annotations: { readOnlyHint } });
    for (let round = 0; round < 2; round++) {
      expect(await names([find(false), find(true), destructive, readOnly])).toEqual([true, true]);
      await settled(guard);
    }
  });
});

describe("a guard with a plan cache, against a PDP whose policies change", () => {
  let dir: string;
  let pdp: LocalPdp;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "hopguard-plan-policies-"));
    cpSync(policyDir, dir, { recursive: true });
    // A kind whose rules read the clock, and one whose condition uses an operator the residual evaluator lacks.
    writeFileSync(
      join(dir, "mcp_clock.yaml"),
      [
        "apiVersion: api.cerbos.dev/v1",
        "resourcePolicy:",
        '  resource: "mcp::clock"',
        "  version: default",
        "  rules:",
        '    - actions: ["tick"]',
        "      effect: EFFECT_ALLOW",
        '      roles: ["user"]',
        "      condition:",
        "        match:",
        '          expr: now() < timestamp("2100-01-01T00:00:00Z")',
        '    - actions: ["grep"]',
        "      effect: EFFECT_ALLOW",
        '      roles: ["user"]',
        "      condition:",
        "        match:",
        '          expr: R.attr.arguments.pattern.matches("^[a-z]+$")',
        "",
      ].join("\n"),
    );
    pdp = await startLocalPdp({ policyDir: dir });
  });

  afterAll(async () => {
    await pdp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends hops of clock-reading rules and of unknown residual operators to the PDP, every time", async () => {
    const guard = createGuard({ client: pdp.client, planCache: { policyDir: dir, watch: false } });
    await guard.planCache?.ready;
    const chain = guard.forUser(alice);
    for (let attempt = 0; attempt < 3; attempt++) {
      const tick = await chain.authorize({ server: "clock", tool: "tick" });
      const grep = await chain.authorize({ server: "clock", tool: "grep", arguments: { pattern: "abc" } });
      const refused = await chain.authorize({ server: "clock", tool: "grep", arguments: { pattern: "A B" } });
      expect([tick.allowed, grep.allowed, refused.allowed]).toEqual([true, true, false]);
      expect([tick, grep, refused].map((decision) => decision.hops[0]?.source)).toEqual(["pdp", "pdp", "pdp"]);
      await settled(guard);
    }
  });

  it("sees a policy change: a watching guard drops its plans; one that does not, when told to", async () => {
    const watching = createGuard({ client: pdp.client, planCache: { policyDir: dir, reloadPauseMs: 20_000 } });
    const blind = createGuard({ client: pdp.client, planCache: { policyDir: dir, watch: false } });
    await Promise.all([watching.planCache?.ready, blind.planCache?.ready]);
    const call = { server: "memory", tool: "open_nodes", arguments: { names: ["a"] } };
    const chains = [watching.forUser(alice), blind.forUser(alice)];
    for (const chain of chains) await chain.authorize(call);
    await Promise.all([settled(watching), settled(blind)]);
    for (const chain of chains)
      expect((await chain.authorize(call)).hops[0]).toMatchObject({ source: "plan", effect: "EFFECT_ALLOW" });

    // Reading the graph becomes something only a "librarian" may do.
    const file = join(dir, "mcp_memory.yaml");
    const rule = 'actions: ["read_graph", "search_nodes", "open_nodes"]\n      effect: EFFECT_ALLOW\n';
    const before = readFileSync(file, "utf8");
    expect(before).toContain(`${rule}      derivedRoles: ["acting_user", "delegated_agent"]`);
    writeFileSync(
      file,
      before.replace(
        `${rule}      derivedRoles: ["acting_user", "delegated_agent"]`,
        `${rule}      roles: ["librarian"]`,
      ),
    );
    // Wait for the PDP itself to load the change, as a guard without a cache sees it.
    const uncached = createGuard({ client: pdp.client }).forUser(alice);
    await vi.waitFor(async () => expect((await uncached.authorize(call)).allowed).toBe(false), {
      timeout: 20_000,
      interval: 200,
    });
    // The PDP has the change: the watching guard answers as it does at once; the blind one still from its old plan.
    const [fromWatching, fromBlind] = await Promise.all(chains.map((chain) => chain.authorize(call)));
    expect(fromWatching?.allowed).toBe(false);
    expect(fromBlind).toMatchObject({ allowed: true });
    expect(fromBlind?.hops[0]?.source).toBe("plan");
    blind.clearCache();
    expect((await chains[1]?.authorize(call))?.allowed).toBe(false);
  });

  it("keeps a cached answer for its time to live when the PDP goes away; anything else fails closed", async () => {
    const own = await startLocalPdp({ policyDir: dir });
    const guard = createGuard({ client: own.client, timeoutMs: 500, planCache: { policyDir: dir, watch: false } });
    await guard.planCache?.ready;
    const chain = guard.forUser(alice);
    const cachedCall = { server: "filesystem", tool: "list_allowed_directories" };
    await chain.authorize(cachedCall);
    await settled(guard);
    await own.stop();
    const decision = await chain.authorize(cachedCall);
    expect(decision).toMatchObject({ allowed: true });
    expect(decision.hops[0]?.source).toBe("plan");
    await expect(
      chain.authorize({ server: "filesystem", tool: "write_file", arguments: { path: "/workspace/alice/x" } }),
    ).rejects.toSatisfy(PdpUnavailableError.isInstance);
  });
});
