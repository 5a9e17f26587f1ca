// Properties of delegation chains, checked with fast-check 4 against the real Cerbos PDP where a decision is involved.
//
// Properties × runs (each property's runs use a fresh random seed; fast-check prints it, and the shrunk
// counterexample, on failure — replay with `{ seed, path }`):
//   1. allowed(chain) ⇔ every hop alone allows, for tool calls and for delegations — random chains against a random
//      policy family (fast-check seed 19, drawn once, served by a dedicated PDP) ........................ 300 runs
//   2. effective scope(child) ⊆ scope(parent): tools, maxDepth, expiresAt — pure narrowScope ............ 5000 runs
//   3. a delegation never outlives its parent — real delegate() against the shared PDP ................... 60 runs
//      (the pure half of this property is part of 2)
//   4. the decision never depends on the order hops answer in — answers delayed 0–5 ms .................. 100 runs
import { setTimeout as sleep } from "node:timers/promises";
import type { CheckResourcesRequest } from "@cerbos/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  createGuard,
  type Decision,
  type Delegation,
  DelegationError,
  type Guard,
  type PdpClient,
  type Scope,
} from "../../src/index.ts";
import { type LocalPdp, startLocalPdp } from "../../src/local-pdp.ts";
import { type EffectiveScope, narrowScope, rootScope, scopeAdmitsTool } from "../../src/scope.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { recordingPdp } from "../support/recording-pdp.ts";
import { alice, planner, researcher } from "../support/users.ts";
import { familyNames, policyFamily, writePolicyDir } from "./support/policy-family.ts";

const familySeed = 19;
const runs = { hopsAlone: 300, scopeSubset: 5000, expiry: 60, answerOrder: 100 } as const;

let pdp: LocalPdp;
let removePolicies: () => Promise<void>;

beforeAll(async () => {
  const written = await writePolicyDir(policyFamily(familySeed));
  removePolicies = written.remove;
  pdp = await startLocalPdp({ policyDir: written.dir });
});

afterAll(async () => {
  await pdp?.stop();
  await removePolicies?.();
});

/** A user and 1–4 agents with random roles, and one call to a random tool of a random server. */
const chainCase = fc.record({
  userRoles: fc.subarray([...familyNames.extraRoles]),
  agentRoles: fc.array(fc.subarray([...familyNames.extraRoles]), { minLength: 1, maxLength: 4 }),
  server: fc.constantFrom(...familyNames.servers),
  tool: fc.constantFrom(...familyNames.tools),
  arguments: fc.record(
    {
      x: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.string({ maxLength: 3 }), fc.constant(null)),
      mode: fc.constantFrom("safe", "unsafe"),
      note: fc.string({ maxLength: 5 }),
    },
    { requiredKeys: [] },
  ),
});
type ChainCase = typeof chainCase extends fc.Arbitrary<infer T> ? T : never;

/** What one delegate() step came to: the child, or the PDP's refusal. */
type DelegationStep = { type: "delegated" } | { type: "refused"; decision: Decision };

/**
 * Grows the chain agent by agent, stopping at the first refusal (the chain so far is then the one that calls).
 * `afterStep` sees each step while the requests it sent are the last ones recorded.
 */
async function growChain(
  guard: Guard,
  drawn: ChainCase,
  afterStep: (step: DelegationStep) => Promise<void> = async () => {},
): Promise<{ chain: Delegation; steps: DelegationStep[] }> {
  let chain = guard.forUser({ id: "u", roles: ["user", ...drawn.userRoles] });
  const steps: DelegationStep[] = [];
  for (const [index, roles] of drawn.agentRoles.entries()) {
    let step: DelegationStep;
    try {
      chain = await chain.delegate({ id: `a${index}`, roles: ["agent", ...roles] });
      step = { type: "delegated" };
    } catch (error) {
      // Ids are distinct and the chain stays within the default maxDepth: only a policy may refuse.
      if (!DelegationError.isInstance(error) || error.code !== "delegation_denied" || error.decision === undefined) {
        throw error;
      }
      step = { type: "refused", decision: error.decision };
    }
    steps.push(step);
    await afterStep(step);
    if (step.type === "refused") break;
  }
  return { chain, steps };
}

/** Asks the PDP about each recorded request on its own, exactly as it was sent: one principal, one resource. */
async function effectsAlone(client: PdpClient, requests: readonly CheckResourcesRequest[]): Promise<string[]> {
  return Promise.all(
    requests.map(async (request) => {
      const response = await client.checkResources(request);
      const entry = request.resources[0];
      const action = entry?.actions[0] as string;
      expect(response.results).toHaveLength(1);
      expect(response.results[0]?.resource).toMatchObject({ kind: entry?.resource.kind, id: entry?.resource.id });
      return response.results[0]?.actions[action] ?? "EFFECT_DENY";
    }),
  );
}

function expectDecisionMatchesHopsAlone(decision: Decision, chain: readonly string[], alone: readonly string[]): void {
  const ids = decision.hops.map((hop) => hop.principalId);
  expect(ids).toEqual(chain);
  expect(alone).toHaveLength(chain.length);
  // allowed(chain) ⇒ every hop alone allows
  if (decision.allowed) expect(alone.every((effect) => effect === "EFFECT_ALLOW")).toBe(true);
  // some hop alone denies ⇒ the chain is denied, by the first such hop
  const firstDenying = alone.findIndex((effect) => effect !== "EFFECT_ALLOW");
  if (firstDenying >= 0) {
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe(chain[firstDenying]);
  } else {
    expect(decision.allowed).toBe(true);
  }
  expect(decision.hops.map((hop) => hop.effect)).toEqual(alone);
}

describe("properties against the PDP", () => {
  test("a chain is allowed exactly when every hop, asked alone, allows", async () => {
    const seen = { allowed: 0, deniedByUser: 0, deniedByAgent: 0, delegationsRefused: 0, deepChains: 0 };
    await fc.assert(
      fc.asyncProperty(chainCase, async (drawn) => {
        const recording = recordingPdp(pdp.client);
        const guard = createGuard({ client: recording });
        let sentBefore = 0;
        const { chain } = await growChain(guard, drawn, async (step) => {
          const sent = recording.checks.slice(sentBefore);
          sentBefore = recording.checks.length;
          const alone = await effectsAlone(pdp.client, sent);
          if (step.type === "refused") {
            seen.delegationsRefused++;
            expectDecisionMatchesHopsAlone(step.decision, step.decision.chain, alone);
          } else {
            // Every hop that let the agent in allowed it on its own.
            expect(alone.length).toBeGreaterThan(0);
            expect(alone.every((effect) => effect === "EFFECT_ALLOW")).toBe(true);
          }
        });
        if (chain.depth >= 3) seen.deepChains++;

        recording.checks.length = 0;
        const decision = await chain.authorize({ server: drawn.server, tool: drawn.tool, arguments: drawn.arguments });
        expect(recording.checks.map((request) => request.principal.id)).toEqual(chain.chain);
        expectDecisionMatchesHopsAlone(decision, chain.chain, await effectsAlone(pdp.client, recording.checks));

        if (decision.allowed) seen.allowed++;
        else if (decision.deniedBy === "u") seen.deniedByUser++;
        else seen.deniedByAgent++;
      }),
      { numRuns: runs.hopsAlone },
    );
    // Not vacuous: the family allows, denies at the user and at agents, refuses delegations and grows deep chains.
    for (const [outcome, count] of Object.entries(seen)) expect(count, outcome).toBeGreaterThan(0);
  });

  test("the decision never depends on the order the hops' answers arrive in", async () => {
    let roundsOutOfOrder = 0;
    await fc.assert(
      fc.asyncProperty(
        chainCase,
        fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 1, maxLength: 12 }),
        async (drawn, delays) => {
          // Per round of checks (one request id), the depth of each hop in the order its answer arrived.
          const arrivals = new Map<string, number[]>();
          const delayed = delayedClient(pdp.client, delays, (request) => {
            const key = request.requestId ?? "";
            arrivals.set(key, [...(arrivals.get(key) ?? []), request.principal.attr?.depth as number]);
          });
          const prompt = await summarize(createGuard({ client: pdp.client }), drawn);
          const late = await summarize(createGuard({ client: delayed }), drawn);
          expect(late).toEqual(prompt);
          for (const depths of arrivals.values()) {
            if (depths.some((depth, index) => index > 0 && depth < (depths[index - 1] as number))) roundsOutOfOrder++;
          }
        },
      ),
      { numRuns: runs.answerOrder },
    );
    // The delays did reorder answers: in some rounds a deeper hop answered before a shallower one.
    expect(roundsOutOfOrder).toBeGreaterThan(0);
  });
});

/** The parts of a chain's history that must not depend on timing: every delegation step and the final decision. */
async function summarize(guard: Guard, drawn: ChainCase) {
  const { chain, steps } = await growChain(guard, drawn);
  const decision = await chain.authorize({ server: drawn.server, tool: drawn.tool, arguments: drawn.arguments });
  const verdict = (each: Decision) => ({
    allowed: each.allowed,
    deniedBy: each.deniedBy,
    chain: each.chain,
    hops: each.hops.map((hop) => [hop.principalId, hop.kind, hop.depth, hop.effect, hop.policy]),
  });
  return {
    chain: chain.chain,
    steps: steps.map((step) => (step.type === "delegated" ? "delegated" : verdict(step.decision))),
    decision: verdict(decision),
  };
}

/** The real PDP, each answer held back by the next of `delays` (ms, cycling) before it reaches hopguard. */
function delayedClient(
  inner: PdpClient,
  delays: readonly number[],
  arrived: (request: CheckResourcesRequest) => void,
): PdpClient {
  let next = 0;
  return {
    async checkResources(request, options) {
      const delay = delays[next++ % delays.length] ?? 0;
      const answer = await inner.checkResources(request, options);
      await sleep(delay);
      arrived(request);
      return answer;
    },
    planResources: (request, options) => inner.planResources(request, options),
  };
}

describe("properties of scopes", () => {
  const serverGlob = fc.string({ unit: fc.constantFrom("a", "b", "*"), minLength: 1, maxLength: 3 });
  const toolGlob = fc.string({ unit: fc.constantFrom("a", "b", "*", "/"), minLength: 1, maxLength: 4 });
  const pattern = fc.tuple(serverGlob, toolGlob).map(([server, tool]) => `${server}/${tool}`);
  const tools = fc.array(pattern, { maxLength: 3 });
  const epoch = fc.integer({ min: 0, max: 4_000_000_000_000 });
  const serverFill = fc.string({ unit: fc.constantFrom("a", "b", "*"), maxLength: 3 });
  const toolFill = fc.string({ unit: fc.constantFrom("a", "b", "*", "/"), maxLength: 3 });

  test("a child's effective scope is within its parent's: tools, depth and expiry", () => {
    const seen = { narrowedTools: 0, witnessesAdmitted: 0, refused: 0 };
    fc.assert(
      fc.property(
        fc.record({
          guardMaxDepth: fc.integer({ min: 0, max: 5 }),
          parent: fc.record(
            { tools, expiresAt: epoch, maxDepth: fc.integer({ min: 0, max: 6 }) },
            { requiredKeys: [] },
          ),
          child: fc.record({ tools, expiresAt: epoch, maxDepth: fc.integer({ min: 0, max: 7 }) }, { requiredKeys: [] }),
          names: fc.array(
            fc.tuple(
              serverFill.filter((name) => name !== ""),
              toolFill.filter((name) => name !== ""),
            ),
          ),
          serverFills: fc.array(serverFill, { minLength: 4, maxLength: 4 }),
          toolFills: fc.array(toolFill, { minLength: 4, maxLength: 4 }),
        }),
        ({ guardMaxDepth, parent: parentRequest, child: childRequest, names, serverFills, toolFills }) => {
          const parent = rootScope(parentRequest, guardMaxDepth, "scope");
          const narrowed = narrowScope(parent, childRequest, "agent.scope");
          if ("field" in narrowed) {
            seen.refused++;
            expectRefusalJustified(parent, childRequest, narrowed.field);
            return;
          }
          const child: EffectiveScope = narrowed;

          expect(child.maxDepth).toBeLessThanOrEqual(parent.maxDepth);
          if (childRequest.maxDepth === undefined) expect(child.maxDepth).toBe(parent.maxDepth);
          if (parent.expiresAt !== undefined) {
            expect(child.expiresAt).toBeDefined();
            expect(child.expiresAt as number).toBeLessThanOrEqual(parent.expiresAt);
          }
          if (childRequest.expiresAt === undefined) expect(child.expiresAt).toBe(parent.expiresAt);

          // Concrete calls: random ones, and for each child pattern one built to match it.
          const witnesses = (child.tools ?? []).map((glob) => instantiate(glob, serverFills, toolFills));
          for (const [server, tool] of [...names, ...witnesses]) {
            if (scopeAdmitsTool(child, server, tool)) {
              expect(scopeAdmitsTool(parent, server, tool), `${server}/${tool}`).toBe(true);
            }
          }
          for (const [server, tool] of witnesses) expect(scopeAdmitsTool(child, server, tool)).toBe(true);
          if (parent.tools !== undefined && childRequest.tools !== undefined) {
            seen.narrowedTools++;
            if (witnesses.length > 0) seen.witnessesAdmitted++;
          }
        },
      ),
      { numRuns: runs.scopeSubset },
    );
    for (const [outcome, count] of Object.entries(seen)) expect(count, outcome).toBeGreaterThan(0);
  });

  test("a delegation made through the PDP never outlives its parent", async () => {
    const guard = createGuard({ client: sharedPdpClient() });
    const day = 86_400_000;
    // Far enough from now (≥ 1 s) that the time a delegation takes cannot move a case across "now".
    const offset = fc.oneof(fc.integer({ min: -day, max: -1000 }), fc.integer({ min: 1000, max: 2 * day }));
    const asked = fc.option(fc.record({ offset, form: fc.constantFrom("epoch", "Date", "ISO-8601") }), {
      nil: undefined,
    });
    const outcomes = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.option(offset, { nil: undefined }),
        fc.array(asked, { minLength: 2, maxLength: 2 }),
        async (rootOffset, asks) => {
          const now = Date.now();
          let chain = guard.forUser(alice, rootOffset === undefined ? {} : { scope: { expiresAt: now + rootOffset } });
          for (const [index, ask] of asks.entries()) {
            const agent = index === 0 ? planner : researcher;
            const at = ask === undefined ? undefined : now + ask.offset;
            const scope: Scope = at === undefined || ask === undefined ? {} : { expiresAt: inForm(at, ask.form) };
            const parentExpiry = chain.scope.expiresAt;
            const effective = at ?? parentExpiry;
            const expected =
              parentExpiry !== undefined && parentExpiry <= Date.now()
                ? "delegation_expired"
                : at !== undefined && parentExpiry !== undefined && at > parentExpiry
                  ? "scope_widened"
                  : effective !== undefined && effective <= Date.now()
                    ? "delegation_expired"
                    : "delegated";
            const child = await chain.delegate({ ...agent, scope }).catch((error: unknown) => error);
            outcomes.add(expected);
            if (expected !== "delegated") {
              expect(DelegationError.isInstance(child) && child.code).toBe(expected);
              return;
            }
            expect(DelegationError.isInstance(child), String(child)).toBe(false);
            const delegated = child as Delegation;
            expect(delegated.scope.expiresAt).toBe(effective);
            if (parentExpiry !== undefined)
              expect(delegated.scope.expiresAt as number).toBeLessThanOrEqual(parentExpiry);
            chain = delegated;
          }
        },
      ),
      { numRuns: runs.expiry },
    );
    expect([...outcomes].sort()).toEqual(["delegated", "delegation_expired", "scope_widened"]);
  });
});

/** A refusal names a field the request really asked more of (tools are judged conservatively, so not checked). */
function expectRefusalJustified(parent: EffectiveScope, request: Scope, field: string): void {
  if (field === "maxDepth") expect(request.maxDepth as number).toBeGreaterThan(parent.maxDepth);
  if (field === "expiresAt") {
    expect(parent.expiresAt).toBeDefined();
    expect(request.expiresAt as number).toBeGreaterThan(parent.expiresAt as number);
  }
  if (field === "tools") expect(parent.tools).toBeDefined();
}

/** A concrete server and tool the glob admits: each `*` replaced by the next fill of its side. */
function instantiate(glob: string, serverFills: readonly string[], toolFills: readonly string[]): [string, string] {
  const slash = glob.indexOf("/");
  const fill = (side: string, fills: readonly string[]) => {
    let next = 0;
    return side.replaceAll("*", () => fills[next++ % fills.length] ?? "");
  };
  return [fill(glob.slice(0, slash), serverFills), fill(glob.slice(slash + 1), toolFills)];
}

function inForm(epoch: number, form: "epoch" | "Date" | "ISO-8601"): number | Date | string {
  if (form === "Date") return new Date(epoch);
  if (form === "ISO-8601") return new Date(epoch).toISOString();
  return epoch;
}
