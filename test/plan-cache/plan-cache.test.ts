import { fileURLToPath } from "node:url";
import { Effect, PlanKind, type PlanResourcesRequest, type Principal, type Value } from "@cerbos/core";
import { describe, expect, it } from "vitest";
import {
  type CachedDecisionRecord,
  createPlanCache,
  type PlanCacheCheck,
  policyProfile,
  readPolicyProfile,
} from "../../src/plan-cache/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { recordingPdp } from "../support/recording-pdp.ts";

const client = sharedPdpClient();
const policyDir = fileURLToPath(new URL("../../policies/", import.meta.url));

// A profile with no rules: every pair may be answered from its plan (the fake PDPs below decide what plans say).
const anything = policyProfile([]);

const principal: Principal = Object.freeze({
  id: "alice",
  roles: ["user"],
  attr: Object.freeze({ workspace: "/workspace/alice" }),
});

function readFile(path: unknown, id = "read_file"): PlanCacheCheck {
  return {
    resource: {
      kind: "mcp::filesystem",
      id,
      attr: { server: "filesystem", tool: "read_file", arguments: { path } as never, annotations: {} },
    },
    action: "read_file",
  };
}

const inWorkspace = {
  kind: PlanKind.CONDITIONAL,
  condition: {
    operator: "startsWith",
    operands: [{ name: "request.resource.attr.arguments.path" }, { value: "/workspace/alice/" }],
  },
  validationErrors: [],
};

/** A fake PDP for the cache's own logic: answers plans as told, counts them, and can be held or made to fail. */
function fakePdp(answer: () => unknown) {
  const requests: PlanResourcesRequest[] = [];
  let release: (() => void) | undefined;
  let held: Promise<void> | undefined;
  return {
    requests,
    hold() {
      held = new Promise((settle) => {
        release = settle;
      });
    },
    release() {
      release?.();
      held = undefined;
    },
    async planResources(request: PlanResourcesRequest) {
      requests.push(request);
      if (held !== undefined) await held;
      return answer() as never;
    },
  };
}

describe("plan cache mechanics", () => {
  it("answers an always-allowed plan from memory, without the arguments in the plan request", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    const cache = createPlanCache({ client: pdp, policies: anything });
    expect(cache.answer(principal, readFile("/etc/passwd"))).toBeUndefined();
    expect(await cache.lookup(principal, readFile("/etc/passwd"))).toEqual({ effect: "EFFECT_ALLOW", source: "plan" });
    expect(cache.answer(principal, readFile("/anything"))).toEqual({ effect: "EFFECT_ALLOW", source: "plan" });
    expect(pdp.requests).toHaveLength(1);
    expect(pdp.requests[0]?.resource).toEqual({
      kind: "mcp::filesystem",
      attr: { server: "filesystem", tool: "read_file", annotations: {} },
    });
  });

  it("evaluates a residual per call and sends a call it cannot decide live", async () => {
    const pdp = fakePdp(() => inWorkspace);
    const cache = createPlanCache({ client: pdp, policies: anything });
    expect(await cache.lookup(principal, readFile("/workspace/alice/a"))).toEqual({
      effect: "EFFECT_ALLOW",
      source: "residual",
    });
    expect(cache.answer(principal, readFile("/workspace/bob/a"))).toEqual({
      effect: "EFFECT_DENY",
      source: "residual",
    });
    expect(cache.answer(principal, readFile(null))).toBeUndefined();
    expect(cache.answer(principal, readFile(42))).toBeUndefined();
    expect(cache.answer(principal, readFile("/workspace/alice/\uD800"))).toBeUndefined();
    expect(cache.stats()).toMatchObject({ residualAnswers: 2, planRequests: 1 });
  });

  it("shares one plan request among concurrent misses for one key", async () => {
    const pdp = fakePdp(() => inWorkspace);
    pdp.hold();
    const cache = createPlanCache({ client: pdp, policies: anything });
    const answers = Promise.all(
      Array.from({ length: 10 }, (_, i) => cache.lookup(principal, readFile(`/workspace/alice/${i}`))),
    );
    await new Promise((settle) => setTimeout(settle, 10));
    expect(pdp.requests).toHaveLength(1);
    pdp.release();
    expect((await answers).map((answer) => answer?.effect)).toEqual(Array(10).fill("EFFECT_ALLOW"));
    expect(pdp.requests).toHaveLength(1);
  });

  it("never caches a failed plan request: that hop goes live and the next call asks again", async () => {
    let fail = true;
    const pdp = fakePdp(() => {
      if (fail) throw new Error("PDP unavailable");
      return { kind: PlanKind.ALWAYS_DENIED, validationErrors: [] };
    });
    const cache = createPlanCache({ client: pdp, policies: anything });
    expect(await cache.lookup(principal, readFile("/x"))).toBeUndefined();
    expect(cache.stats()).toMatchObject({ entries: 0, planErrors: 1 });
    fail = false;
    expect(await cache.lookup(principal, readFile("/x"))).toEqual({ effect: "EFFECT_DENY", source: "plan" });
    expect(pdp.requests).toHaveLength(2);
  });

  it("never caches a malformed plan or one the PDP reported schema errors for", async () => {
    let answer: unknown = { kind: "KIND_SOMETHING_ELSE" };
    const pdp = fakePdp(() => answer);
    const cache = createPlanCache({ client: pdp, policies: anything });
    expect(await cache.lookup(principal, readFile("/x"))).toBeUndefined();
    expect(cache.stats().entries).toBe(0);
    answer = { kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [{ path: "/x", message: "bad", source: 1 }] };
    expect(await cache.lookup(principal, readFile("/x"))).toBeUndefined();
    expect(cache.answer(principal, readFile("/x"))).toBeUndefined();
  });

  it("gives up waiting at timeoutMs and when the caller aborts, keeping the plan for the calls that follow", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    pdp.hold();
    const timed = createPlanCache({ client: pdp, policies: anything, timeoutMs: 20 });
    expect(await timed.lookup(principal, readFile("/x"))).toBeUndefined();
    expect(timed.stats()).toMatchObject({ entries: 0, planErrors: 1 });

    const cache = createPlanCache({ client: pdp, policies: anything });
    const controller = new AbortController();
    const waiting = cache.lookup(principal, readFile("/x"), { signal: controller.signal });
    controller.abort();
    expect(await waiting).toBeUndefined();
    pdp.release();
    await new Promise((settle) => setTimeout(settle, 10));
    expect(cache.answer(principal, readFile("/x"))).toEqual({ effect: "EFFECT_ALLOW", source: "plan" });
  });

  it("expires plans after ttlMs and keeps at most maxEntries, least recently used out first", async () => {
    let now = 1_000;
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    const cache = createPlanCache({ client: pdp, policies: anything, ttlMs: 5_000, maxEntries: 2, clock: () => now });
    const other = (id: string): Principal => ({ ...principal, id });
    await cache.lookup(other("a"), readFile("/x"));
    await cache.lookup(other("b"), readFile("/x"));
    // Recency counts to the second: a hit within the same second as the last one does not reorder.
    now += 1_000;
    expect(cache.answer(other("a"), readFile("/x"))).toBeDefined();
    await cache.lookup(other("c"), readFile("/x"));
    expect(cache.stats().entries).toBe(2);
    // "b" was used least recently.
    expect(cache.answer(other("b"), readFile("/x"))).toBeUndefined();
    expect(cache.answer(other("a"), readFile("/x"))).toBeDefined();
    now += 5_000;
    expect(cache.answer(other("a"), readFile("/x"))).toBeUndefined();
    expect(cache.answer(other("c"), readFile("/x"))).toBeUndefined();
    expect(cache.stats().entries).toBe(0);
  });

  it("clear() drops every plan, and one asked for before it answers no one", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    const cache = createPlanCache({ client: pdp, policies: anything });
    await cache.lookup(principal, readFile("/x"));
    pdp.hold();
    const otherPrincipal: Principal = { ...principal, id: "bob" };
    const beforeClear = cache.lookup(otherPrincipal, readFile("/x"));
    cache.clear();
    expect(cache.answer(principal, readFile("/x"))).toBeUndefined();
    pdp.release();
    // A plan asked for before the clear may speak for the old policies: it answers no one, not even its own caller.
    expect(await beforeClear).toBeUndefined();
    expect(cache.answer(otherPrincipal, readFile("/x"))).toBeUndefined();
    expect(cache.stats().entries).toBe(0);
  });

  it("prefetches in the background only what could answer, so the next call is answered from memory", async () => {
    const pdp = fakePdp(() => inWorkspace);
    const profile = policyProfile([
      {
        resourcePolicy: {
          resource: "mcp::filesystem",
          version: "default",
          rules: [
            {
              actions: ["read_file"],
              effect: "EFFECT_ALLOW",
              roles: ["*"],
              condition: { match: { expr: "has(R.attr.arguments.path)" } },
            },
          ],
        },
      },
    ]);
    const cache = createPlanCache({ client: pdp, policies: profile });
    const noPath: PlanCacheCheck = {
      ...readFile("/x"),
      resource: { ...readFile("/x").resource, attr: { arguments: {} } },
    };
    cache.prefetch(principal, noPath);
    expect(pdp.requests).toHaveLength(0);
    cache.prefetch(principal, readFile("/workspace/alice/a"));
    cache.prefetch(principal, readFile("/workspace/alice/b"));
    await new Promise((settle) => setTimeout(settle, 10));
    expect(pdp.requests).toHaveLength(1);
    expect(cache.answer(principal, readFile("/workspace/alice/c"))).toEqual({
      effect: "EFFECT_ALLOW",
      source: "residual",
    });
    cache.prefetch(principal, readFile("/workspace/alice/d"));
    expect(pdp.requests).toHaveLength(1);
  });

  it("after a clear with pauseMs, answers nothing and asks for no plan until the PDP has reloaded", async () => {
    let now = 0;
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    const cache = createPlanCache({ client: pdp, policies: anything, clock: () => now });
    await cache.lookup(principal, readFile("/x"));
    cache.clear({ policies: anything, pauseMs: 1000 });
    expect(await cache.lookup(principal, readFile("/x"))).toBeUndefined();
    expect(await cache.plan(principal, readFile("/x"))).toBeUndefined();
    expect(pdp.requests).toHaveLength(1);
    now += 1000;
    expect(await cache.lookup(principal, readFile("/x"))).toEqual({ effect: "EFFECT_ALLOW", source: "plan" });
    expect(pdp.requests).toHaveLength(2);
  });

  it("judges a caller's object that changed while its plan was fetched as it is now, never under the old key", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    pdp.hold();
    const cache = createPlanCache({ client: pdp, policies: anything });
    const check = readFile("/x");
    const answer = cache.lookup(principal, check);
    (check.resource.attr as Record<string, Value>).annotations = { destructiveHint: true };
    pdp.release();
    expect(await answer).toBeUndefined();
    expect(pdp.requests[0]?.resource.attr).toMatchObject({ annotations: {} });
  });

  it("does nothing when turned off, or without a policy profile", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    for (const cache of [
      createPlanCache({ client: pdp, policies: anything, enabled: false }),
      createPlanCache({ client: pdp }),
    ]) {
      expect(cache.active).toBe(false);
      expect(await cache.lookup(principal, readFile("/x"))).toBeUndefined();
      expect(cache.answer(principal, readFile("/x"))).toBeUndefined();
    }
    expect(pdp.requests).toHaveLength(0);
  });

  it("keys on every principal attribute, the resource's known attributes and auxData, never on the arguments", async () => {
    const pdp = fakePdp(() => ({ kind: PlanKind.ALWAYS_ALLOWED, validationErrors: [] }));
    const cache = createPlanCache({ client: pdp, policies: anything });
    const annotated = (annotations: Record<string, boolean>): PlanCacheCheck => {
      const check = readFile("/x");
      return { ...check, resource: { ...check.resource, attr: { ...check.resource.attr, annotations } } };
    };
    await cache.lookup(principal, readFile("/a"));
    await cache.lookup(principal, readFile("/b"));
    await cache.lookup({ ...principal, attr: { workspace: "/workspace/alice", department: "sales" } }, readFile("/a"));
    await cache.lookup({ ...principal, roles: ["user", "intern"] }, readFile("/a"));
    await cache.lookup({ ...principal, policyVersion: "v2" }, readFile("/a"));
    await cache.lookup(principal, annotated({ readOnlyHint: true }));
    await cache.lookup(principal, readFile("/a"), { auxData: { jwt: { token: "t" } } });
    expect(pdp.requests).toHaveLength(6);
    expect(pdp.requests[5]?.auxData).toEqual({ jwt: { token: "t" } });
  });

  it("records every cached decision in the opt-in decision log, and a failing log changes nothing", async () => {
    const pdp = fakePdp(() => inWorkspace);
    const records: CachedDecisionRecord[] = [];
    const cache = createPlanCache({ client: pdp, policies: anything, decisionLog: (record) => records.push(record) });
    await cache.lookup(principal, readFile("/workspace/alice/a"), { requestId: "trace-1" });
    cache.answer(principal, readFile(null));
    expect(records).toEqual([
      expect.objectContaining({
        requestId: "trace-1",
        principal,
        resource: { kind: "mcp::filesystem", id: "read_file" },
        action: "read_file",
        effect: "EFFECT_ALLOW",
        source: "residual",
        attributes: expect.objectContaining({ arguments: { path: "/workspace/alice/a" } }),
      }),
    ]);
    const throwing = createPlanCache({
      client: pdp,
      policies: anything,
      decisionLog: () => {
        throw new Error("log down");
      },
    });
    expect(await throwing.lookup(principal, readFile("/workspace/bob/a"))).toEqual({
      effect: "EFFECT_DENY",
      source: "residual",
    });
  });

  it("tells a listing each hop's plan kind, and fills the cache for the calls that follow", async () => {
    const pdp = fakePdp(() => inWorkspace);
    const cache = createPlanCache({ client: pdp, policies: anything });
    expect(await cache.plan(principal, readFile(undefined))).toBe("conditional");
    expect(cache.answer(principal, readFile("/workspace/alice/a"))?.effect).toBe("EFFECT_ALLOW");
    expect(pdp.requests).toHaveLength(1);
  });
});

describe("plan cache against the shared PDP", () => {
  it("never gives a principal whose attributes changed the old answer", async () => {
    const recording = recordingPdp(client);
    const cache = createPlanCache({ client: recording, policies: await readPolicyProfile(policyDir) });
    const user = (attr: Record<string, Value>): Principal => ({
      id: "alice",
      roles: ["user"],
      attr: { onBehalfOf: { id: "alice", roles: ["user"], attr }, chain: ["alice"], depth: 0, kind: "user", ...attr },
    });
    const write = (path: string): PlanCacheCheck => ({
      resource: {
        kind: "mcp::filesystem",
        id: "write_file",
        attr: { server: "filesystem", tool: "write_file", arguments: { path }, annotations: {} },
      },
      action: "write_file",
    });
    const engineer = user({ department: "engineering", workspace: "/workspace/alice" });
    expect(await cache.lookup(engineer, write("/workspace/alice/a.md"))).toEqual({
      effect: "EFFECT_ALLOW",
      source: "residual",
    });
    const moved = user({ department: "engineering", workspace: "/workspace/alice2" });
    const sales = user({ department: "sales", workspace: "/workspace/alice" });
    const answers = [
      await cache.lookup(moved, write("/workspace/alice/a.md")),
      await cache.lookup(sales, write("/workspace/alice/a.md")),
    ];
    expect(answers.map((answer) => answer?.effect)).toEqual(["EFFECT_DENY", "EFFECT_DENY"]);
    // Each changed principal got its own plan, and the PDP agrees with both answers.
    expect(recording.plans).toHaveLength(3);
    for (const changed of [moved, sales]) {
      const live = await client.checkResources({
        principal: changed,
        resources: [{ resource: write("/workspace/alice/a.md").resource, actions: ["write_file"] }],
      });
      expect(live.results[0]?.actions.write_file).toBe(Effect.DENY);
    }
  });

  it("never asks for a plan for move_file, which carries the approval output", async () => {
    const recording = recordingPdp(client);
    const cache = createPlanCache({ client: recording, policies: await readPolicyProfile(policyDir) });
    const move: PlanCacheCheck = {
      resource: {
        kind: "mcp::filesystem",
        id: "move_file",
        attr: {
          server: "filesystem",
          tool: "move_file",
          arguments: { source: "/workspace/alice/a", destination: "/workspace/alice/b" },
          annotations: {},
        },
      },
      action: "move_file",
    };
    const alice: Principal = {
      id: "alice",
      roles: ["user"],
      attr: {
        onBehalfOf: {
          id: "alice",
          roles: ["user"],
          attr: { department: "engineering", workspace: "/workspace/alice" },
        },
        chain: ["alice"],
        depth: 0,
        kind: "user",
        department: "engineering",
        workspace: "/workspace/alice",
      },
    };
    expect(await cache.lookup(alice, move)).toBeUndefined();
    expect(recording.plans).toHaveLength(0);
    const live = await client.checkResources({
      principal: alice,
      resources: [{ resource: move.resource, actions: ["move_file"] }],
    });
    expect(live.results[0]?.actions.move_file).toBe(Effect.ALLOW);
    expect(live.results[0]?.outputs.map((output) => output.value)).toEqual([
      { approval: "required", reason: "moving files changes what others rely on" },
    ]);
  });
});
