import { deepFreeze } from "./actor.ts";
import {
  defaultToolCallCheck,
  type Hop,
  type ToolCallCheck,
  type ToolCallMapper,
  validateToolCall,
} from "./cerbos-request.ts";
import type { PlanCache } from "./plan-cache/plan-cache.ts";
import { canonicalJson } from "./plan-cache/plan-key.ts";
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
  const request = { requestId: options.requestId, auxData: options.auxData };
  const callable = new Set<number>();
  const unknown: number[] = [];
  const checks: ToolCallCheck[] = [];
  const principals = hops.map((hop) => hop.principal);
  for (const [index, tool] of tools.entries()) {
    if (!scopeAdmitsTool(scope, tool.server, tool.tool)) continue;
    const check = listingCheck(tool, options.mapToolCall);
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

// Listings ask about the same tools again and again. With the default mapping a tool's check depends on its server,
// name and annotations alone, so the check made for that content is kept (deeply frozen: the plan cache then keeps
// its key with it) and handed out again. A custom mapping may depend on anything, so it is called every time.
const listingChecks = new Map<string, ToolCallCheck>();
const maxListingChecks = 10_000;

function listingCheck(tool: ToolDescriptor, mapToolCall: ToolCallMapper): ToolCallCheck {
  const make = () =>
    mapToolCall(validateToolCall({ server: tool.server, tool: tool.tool, annotations: tool.annotations }));
  if (mapToolCall !== defaultToolCallCheck) return make();
  const content = contentKey(tool.server, tool.tool, tool.annotations);
  if (content === undefined) return make();
  const kept = listingChecks.get(content);
  if (kept !== undefined) return kept;
  // Kept under the content of the snapshot it was made from, never under what the caller's object said a moment
  // earlier: a getter that answers differently twice cannot file one tool's check under another's name.
  const snapshot = validateToolCall({ server: tool.server, tool: tool.tool, annotations: tool.annotations });
  const check = deepFreeze(mapToolCall(snapshot));
  const made = contentKey(snapshot.server, snapshot.tool, snapshot.annotations);
  if (made !== undefined) {
    if (listingChecks.size >= maxListingChecks) listingChecks.clear();
    listingChecks.set(made, check);
  }
  return check;
}

function contentKey(server: unknown, tool: unknown, annotations: unknown): string | undefined {
  if (typeof server !== "string" || typeof tool !== "string") return undefined;
  // No annotations is an empty set of them, as in the snapshot.
  const annotationsText = annotations === undefined ? "{}" : canonicalJson(annotations);
  if (annotationsText === undefined) return undefined;
  return `${JSON.stringify(server)}\u0000${JSON.stringify(tool)}\u0000${annotationsText}`;
}
