import { type Hop, type ToolCallCheck, validateToolCall } from "./cerbos-request.ts";
import type { PlanCache } from "./plan-cache/plan-cache.ts";
import { type EffectiveScope, scopeAdmitsTool } from "./scope.ts";
import { listCallableTools, type ToolDescriptor, type ToolListingOptions } from "./tool-listing.ts";

/**
 * {@link listCallableTools} through the guard's plan cache: a tool whose plans every hop already holds is listed from
 * memory — iff no hop's plan is always-denied — and only the rest are asked of the PDP, in batches. The plans those
 * lacked are then fetched in the background, so the next listing, and the calls that follow, need no PDP.
 *
 * @remarks
 * A tool one hop's cached plan always denies is left out without asking about the other hops. Listing stays advisory:
 * every call is still authorized on its own.
 */
export async function listCallableToolsCached(
  hops: readonly Hop[],
  scope: EffectiveScope,
  tools: readonly ToolDescriptor[],
  options: ToolListingOptions & { planCache: PlanCache },
): Promise<number[]> {
  const { planCache } = options;
  const request = { requestId: options.requestId };
  const callable = new Set<number>();
  const unknown: number[] = [];
  const checks: ToolCallCheck[] = [];
  const principals = hops.map((hop) => hop.principal);
  for (const [index, tool] of tools.entries()) {
    if (!scopeAdmitsTool(scope, tool.server, tool.tool)) continue;
    const check = options.mapToolCall(
      validateToolCall({ server: tool.server, tool: tool.tool, annotations: tool.annotations }),
    );
    checks[index] = check;
    const plans = planCache.peekAll(principals, check, request);
    if (plans.includes("always-denied")) continue;
    if (plans.includes(undefined)) unknown.push(index);
    else callable.add(index);
  }
  if (unknown.length > 0) {
    const asked = await listCallableTools(
      hops,
      scope,
      unknown.map((index) => tools[index] as ToolDescriptor),
      options,
    );
    for (const position of asked) callable.add(unknown[position] as number);
    planCache.prefetchAll(
      unknown.flatMap((index) =>
        hops.map((hop) => ({ principal: hop.principal, check: checks[index] as ToolCallCheck })),
      ),
      request,
    );
  }
  return [...callable].sort((a, b) => a - b);
}
