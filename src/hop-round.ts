import type { Hop, ToolCallCheck } from "./cerbos-request.ts";
import type { HopDecision } from "./decision.ts";
import { checkHops, type HopCheckOptions } from "./hop-check.ts";
import type { PlanCache } from "./plan-cache/plan-cache.ts";

const noOutputs: readonly never[] = Object.freeze([]);

/** {@link HopCheckOptions} plus the guard's plan cache, if it has one. */
export interface HopRoundOptions extends HopCheckOptions {
  planCache?: PlanCache | undefined;
}

/**
 * Every hop's answer to one check, in chain order: from the plan cache where it can answer in-process, from the PDP
 * for the rest — all of them in one round (see {@link checkHops}).
 *
 * @remarks
 * Hops the PDP is asked about have their plans fetched in the background, so that the calls that follow are answered
 * from memory. The plan cache never answers a hop whose policies could emit outputs, read the clock, or test with
 * `has()` what a plan cannot see (see `readPolicyProfile`); those hops always go to the PDP. A round whose every hop
 * is answered from memory sends nothing and cannot fail.
 */
export async function answerHops(
  hops: readonly Hop[],
  check: ToolCallCheck,
  options: HopRoundOptions,
): Promise<HopDecision[]> {
  const { planCache } = options;
  if (planCache === undefined || !planCache.active) return checkHops(hops, check, options);
  const request = { requestId: options.requestId, auxData: options.auxData };
  const cached = planCache.answerAll(
    hops.map((hop) => hop.principal),
    check,
    request,
  );
  const answers: (HopDecision | undefined)[] = hops.map((hop, index) => {
    const answer = cached[index];
    if (answer === undefined) return undefined;
    // Frozen here, with a shared empty list, so that freezing the decision has nothing left to walk.
    return Object.freeze({
      principalId: hop.actor.id,
      kind: hop.kind,
      depth: hop.depth,
      effect: answer.effect,
      policy: "",
      cerbosCallId: "",
      outputs: noOutputs,
      source: answer.source,
    });
  });
  const live = hops.filter((_hop, index) => answers[index] === undefined);
  if (live.length === 0) return answers as HopDecision[];
  const asked = await checkHops(live, check, options);
  for (const hop of live) planCache.prefetch(hop.principal, check, request);
  let next = 0;
  return answers.map((answer) => answer ?? (asked[next++] as HopDecision));
}
