// The plan cache's figures, for bench/run.ts (or alone: node --expose-gc bench/plan-cache-figures.ts):
// - plan.soundness: 100,000+ hop decisions over random arguments, every hop of every test chain, cached/in-process
//   against the live PDP; `mismatches` must be 0.
// - plan.warm.depth{1,3,5}: one decision of n hops answered from memory (snapshot, mapping, n answers through
//   residual conditions, arguments varying call to call) against one raw check.
// Both run on a PDP of their own serving the repo's policies/ (the filesystem reads there have residuals).
import { fileURLToPath } from "node:url";
import type { Principal } from "@cerbos/core";
import fc from "fast-check";
import { toActor } from "../src/actor.ts";
import { hopPrincipal } from "../src/cerbos-request.ts";
import { defaultToolCallCheck, validateToolCall } from "../src/index.ts";
import { startLocalPdp } from "../src/local-pdp.ts";
import { createPlanCache, readPolicyProfile } from "../src/plan-cache/index.ts";
import { rootScope } from "../src/scope.ts";
import { compareWithLive, hopPrincipals, randomCall } from "../test/plan-cache/differential-harness.ts";
import { interleavedLatency, round, summarize } from "./measure.ts";

/** Options for {@link planCacheFigures}. */
export interface PlanCacheFigureOptions {
  /** Hop decisions compared in the soundness run. @defaultValue `100000` */
  comparisons?: number | undefined;
  /** Decisions timed per depth (warm) and raw checks. @defaultValue `2000` */
  latencyCount?: number | undefined;
  /** Seed of the random calls. @defaultValue `20261127` */
  seed?: number | undefined;
}

type Figure = Record<string, number | string>;

const policyDir = fileURLToPath(new URL("../policies/", import.meta.url));
const callsPerRound = 100;

/** Runs the soundness run and the warm-decision timings; returns figures named as results.json keys. */
export async function planCacheFigures(options: PlanCacheFigureOptions = {}): Promise<Record<string, Figure>> {
  const { comparisons = 100_000, latencyCount = 2000, seed = 20261127 } = options;
  const pdp = await startLocalPdp({ policyDir });
  try {
    const client = pdp.client;
    const policies = await readPolicyProfile(policyDir);
    const figures: Record<string, Figure> = {};

    // 1. Soundness: every hop decision the cache answers must be the PDP's.
    const principals = await hopPrincipals(client);
    // Bursts of plan requests on a busy machine can outlive the default 1 s deadline; such hops only go live.
    const cache = createPlanCache({ client, policies, timeoutMs: 15_000 });
    const rounds = Math.ceil(comparisons / (callsPerRound * principals.length));
    const batches = fc.sample(fc.array(randomCall, { minLength: callsPerRound, maxLength: callsPerRound }), {
      seed,
      numRuns: rounds,
    });
    const started = performance.now();
    const total = { comparisons: 0, plan: 0, residual: 0, mismatches: 0 };
    const examples: string[] = [];
    for (const calls of batches) {
      const round = await compareWithLive(client, cache, principals, calls);
      total.comparisons += round.comparisons;
      total.plan += round.plan;
      total.residual += round.residual;
      total.mismatches += round.mismatches.length;
      for (const mismatch of round.mismatches.slice(0, 3 - examples.length)) examples.push(JSON.stringify(mismatch));
    }
    figures["plan.soundness"] = {
      comparisons: total.comparisons,
      mismatches: total.mismatches,
      fromPlan: total.plan,
      fromResidual: total.residual,
      live: total.comparisons - total.plan - total.residual,
      answeredInProcessShare: round((total.plan + total.residual) / total.comparisons, 3),
      hopPrincipals: principals.length,
      seed,
      seconds: round((performance.now() - started) / 1000, 1),
      planRequests: cache.stats().planRequests,
      planErrors: cache.stats().planErrors,
      ...(examples.length > 0 ? { examples: examples.join(" | ") } : {}),
    };

    // 2. Warm decisions: n hops answered from memory against one raw check of the same call.
    const chain = chainPrincipals(5);
    const warmCache = createPlanCache({ client, policies });
    const call = (i: number) => ({
      server: "filesystem",
      tool: "read_file",
      arguments: { path: `/workspace/alice/notes-${i % 1000}.md` },
    });
    for (const principal of chain) {
      const check = defaultToolCallCheck(validateToolCall(call(0)));
      if ((await warmCache.lookup(principal, check))?.effect !== "EFFECT_ALLOW") {
        throw new Error(`the warm chain's hop ${principal.id} is not answered in-process`);
      }
    }
    let i = 0;
    const decide = (depth: number): void => {
      const check = defaultToolCallCheck(validateToolCall(call(i++)));
      for (let hop = 0; hop < depth; hop++) {
        if (warmCache.answer(chain[hop] as Principal, check) === undefined) throw new Error("a warm hop went live");
      }
    };
    const rawCheck = defaultToolCallCheck(validateToolCall(call(1)));
    const raw = () =>
      client.checkResources({
        principal: chain[0] as Principal,
        resources: [{ resource: rawCheck.resource, actions: [rawCheck.action] }],
      });
    const [rawFigure] = await interleavedLatency([raw], latencyCount);
    const rawP50Us = (rawFigure?.p50Ms ?? 0) * 1000;
    figures["plan.raw"] = { p50Us: round(rawP50Us, 1), p99Us: round((rawFigure?.p99Ms ?? 0) * 1000, 1) };
    // A warm decision never waits on I/O: timed on its own, the depths in turns, so that no gRPC round trip's
    // aftermath (decoding, GC) lands on one of them.
    const depths = [1, 3, 5];
    const warmCount = latencyCount * 5;
    for (let n = 0; n < warmCount; n++) for (const depth of depths) decide(depth);
    const samples = depths.map(() => new Float64Array(warmCount));
    for (let n = 0; n < warmCount; n++) {
      depths.forEach((depth, index) => {
        const started = performance.now();
        decide(depth);
        (samples[index] as Float64Array)[n] = performance.now() - started;
      });
    }
    depths.forEach((depth, index) => {
      const figure = summarize(samples[index] as Float64Array);
      const p50Us = figure.p50Ms * 1000;
      figures[`plan.warm.depth${depth}`] = {
        p50Us: round(p50Us, 1),
        p99Us: round(figure.p99Ms * 1000, 1),
        ratioP50ToRaw: round(p50Us / rawP50Us, 4),
        count: figure.count,
      };
    });
    const stats = warmCache.stats();
    figures["plan.warm.cache"] = { entries: stats.entries, planRequests: stats.planRequests, live: stats.live };
    return figures;
  } finally {
    await pdp.stop();
  }
}

/** A chain of `hops` principals for alice's workspace (user, then agents), as hopguard builds them. */
function chainPrincipals(hops: number): Principal[] {
  const user = toActor(
    { id: "alice", roles: ["user"], attr: { department: "engineering", workspace: "/workspace/alice" } },
    "user",
  );
  const scope = rootScope(undefined, 8, "scope");
  const ids = ["alice", ...Array.from({ length: hops - 1 }, (_, index) => `agent-${index + 1}`)];
  return ids.map((id, depth) => {
    const actor = depth === 0 ? user : toActor({ id, roles: ["agent"] }, "agent");
    const principal = hopPrincipal({
      actor,
      user,
      kind: depth === 0 ? "user" : "agent",
      chain: ids.slice(0, depth + 1),
      scope,
    });
    return deepFreeze(principal);
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const comparisons = Number(process.env.PLAN_COMPARISONS ?? 100_000);
  for (const [name, figure] of Object.entries(await planCacheFigures({ comparisons }))) {
    console.log(`  ${name.padEnd(22)} ${JSON.stringify(figure)}`);
  }
}
