import { type AuxData, Effect, PlanKind, type Principal } from "@cerbos/core";
import { trace } from "@opentelemetry/api";
import type { Hop, ToolCallCheck, ToolCallMapper } from "./cerbos-request.ts";
import { validateToolCall } from "./cerbos-request.ts";
import { authZenBatchOf, forgetAuthZen } from "./hop-answers/batch-support.ts";
import { AuthZenUnimplemented, canBatch } from "./hop-answers/batched-round.ts";
import { askListingBatch } from "./hop-answers/listing-batch.ts";
import { roundWithDeadline } from "./hop-check.ts";
import type { PdpClient } from "./pdp-client.ts";
import { type EffectiveScope, scopeAdmitsTool } from "./scope.ts";
import { SpanAttributes } from "./telemetry.ts";
import { isNoPolicy, warnMissingPolicy } from "./warnings.ts";

/** A tool as a listing knows it: no arguments yet. */
export interface ToolDescriptor {
  server: string;
  tool: string;
  annotations?: Record<string, unknown> | undefined;
}

/** How to reach the PDP for a listing. */
export interface ToolListingOptions {
  client: PdpClient;
  mapToolCall: ToolCallMapper;
  timeoutMs: number;
  requestId: string;
  /** Cerbos's `server.requestLimits.maxResourcesPerRequest`. */
  batchSize: number;
  /** `false`: never an AuthZEN batch (see `createGuard({ batch })`). */
  batch?: boolean | undefined;
  /** Sent with every check and plan (see `guard.forUser(user, { auxData })`). */
  auxData?: AuxData | undefined;
  signal?: AbortSignal | undefined;
}

const planConcurrency = 8;

/**
 * Which of `tools` this chain could call with some arguments: the scope admits it and no hop's policy always denies
 * it. Returns indexes into `tools`, in order.
 *
 * @remarks
 * Costs O(hops) requests when rules do not look at arguments: each hop checks every tool in one `checkResources`
 * (batched to Cerbos's per-request limit) with empty arguments. Only a tool a hop denied that way is asked again with
 * `planResources`, which treats the arguments as unknown, so a tool allowed only for some paths is still listed.
 * Listing is advisory; every call is still authorized on its own.
 *
 * A resource kind for which no hop found any Cerbos policy (the PDP's `NO_MATCH`) — typically a misspelt server
 * name, which would otherwise list zero tools in silence — is named on the active span
 * (`hopguard.policy.missing`) and in a once-per-kind `no_policy` warning (see `setWarningHandler`).
 */
export async function listCallableTools(
  hops: readonly Hop[],
  scope: EffectiveScope,
  tools: readonly ToolDescriptor[],
  options: ToolListingOptions,
): Promise<number[]> {
  const checks = tools.map((tool) =>
    options.mapToolCall(validateToolCall({ server: tool.server, tool: tool.tool, annotations: tool.annotations })),
  );
  const inScope = tools.flatMap((tool, index) => (scopeAdmitsTool(scope, tool.server, tool.tool) ? [index] : []));
  const perHop = await Promise.all(hops.map((hop) => callableForHop(hop, checks, inScope, options)));
  reportMissingPolicies(checks, inScope, perHop);
  return inScope.filter((index) => perHop.every(({ callable }) => callable.has(index)));
}

// A kind is missing a policy when every check of it, at every hop, matched none.
function reportMissingPolicies(
  checks: readonly ToolCallCheck[],
  asked: readonly number[],
  perHop: readonly { unmatched: ReadonlySet<number> }[],
): void {
  if (asked.length === 0 || perHop.length === 0) return;
  const kinds = new Map<string, boolean>();
  for (const index of asked) {
    const kind = (checks[index] as ToolCallCheck).resource.kind;
    const unmatched = perHop.every((hop) => hop.unmatched.has(index));
    kinds.set(kind, (kinds.get(kind) ?? true) && unmatched);
  }
  const missing = [...kinds].flatMap(([kind, unmatched]) => (unmatched ? [kind] : []));
  if (missing.length === 0) return;
  for (const kind of missing) warnMissingPolicy(kind);
  try {
    trace.getActiveSpan()?.setAttribute(SpanAttributes.policyMissing, missing);
  } catch {
    // Telemetry never decides.
  }
}

async function callableForHop(
  hop: Hop,
  checks: readonly ToolCallCheck[],
  candidates: readonly number[],
  options: ToolListingOptions,
): Promise<{ callable: Set<number>; unmatched: Set<number> }> {
  const { principal } = hop;
  const callable = new Set<number>();
  const unmatched = new Set<number>();
  const deniedWithoutArguments: number[] = [];
  const batches: number[][] = [];
  for (let start = 0; start < candidates.length; start += options.batchSize) {
    batches.push(candidates.slice(start, start + options.batchSize));
  }
  // Two tools may share a resource id across servers; the index keeps results apart (and, in an AuthZEN batch, keeps
  // every evaluation its own group: see askListingBatch).
  const asked = (index: number): ToolCallCheck => {
    const check = checks[index] as ToolCallCheck;
    return { resource: { ...check.resource, id: `${index}` }, action: check.action };
  };
  await Promise.all(
    batches.map(async (batch) => {
      const inOneBatch = await askInAuthZenBatch(hop, batch.map(asked), options);
      let rest = batch;
      if (inOneBatch !== undefined) {
        // Tools of a kind this batch allowed none of are asked again with metadata, which says whether any policy
        // matched at all (an AuthZEN answer says so only with meta, at ten times the cost): a misspelt server.
        const kindOf = (index: number) => (checks[index] as ToolCallCheck).resource.kind;
        const allowedKinds = new Set(batch.filter((_index, position) => inOneBatch[position]).map(kindOf));
        rest = [];
        for (const [position, index] of batch.entries()) {
          if (inOneBatch[position] === true) callable.add(index);
          else if (allowedKinds.has(kindOf(index))) deniedWithoutArguments.push(index);
          else rest.push(index);
        }
        if (rest.length === 0) return;
      }
      const response = await guarded(principal, options, (signal) =>
        options.client.checkResources(
          {
            principal,
            resources: rest.map((index) => {
              const { resource, action } = asked(index);
              return { resource, actions: [action] };
            }),
            requestId: options.requestId,
            includeMetadata: true,
            ...(options.auxData === undefined ? {} : { auxData: options.auxData }),
          },
          { signal },
        ),
      );
      for (const index of rest) {
        const check = checks[index] as ToolCallCheck;
        const result = response.findResult({ kind: check.resource.kind, id: `${index}` });
        if (result?.actions[check.action] === Effect.ALLOW) callable.add(index);
        else deniedWithoutArguments.push(index);
        if (result !== undefined && isNoPolicy(result.metadata?.actions[check.action]?.matchedPolicy)) {
          unmatched.add(index);
        }
      }
    }),
  );

  for (let start = 0; start < deniedWithoutArguments.length; start += planConcurrency) {
    await Promise.all(
      deniedWithoutArguments.slice(start, start + planConcurrency).map(async (index) => {
        const check = checks[index] as ToolCallCheck;
        const { arguments: _unknownUntilCalled, ...knownAttributes } = check.resource.attr ?? {};
        const plan = await guarded(principal, options, (signal) =>
          options.client.planResources(
            {
              principal,
              resource: { kind: check.resource.kind, attr: knownAttributes },
              action: check.action,
              requestId: options.requestId,
              ...(options.auxData === undefined ? {} : { auxData: options.auxData }),
            },
            { signal },
          ),
        );
        if (plan.kind !== PlanKind.ALWAYS_DENIED) callable.add(index);
      }),
    );
  }
  return { callable, unmatched };
}

/**
 * The batch's answers from one AuthZEN request, when the client and PDP offer one and it would mean what
 * `checkResources` means (see `canBatch`); `undefined` to ask with `checkResources` instead.
 */
async function askInAuthZenBatch(
  hop: Hop,
  asked: readonly ToolCallCheck[],
  options: ToolListingOptions,
): Promise<boolean[] | undefined> {
  const batch = options.batch === false || options.auxData !== undefined ? undefined : authZenBatchOf(options.client);
  if (batch === undefined || !asked.every((check) => canBatch([hop], check))) return undefined;
  const { principal } = hop;
  const { requestId, timeoutMs } = options;
  return guarded(principal, options, async (signal) => {
    try {
      return await askListingBatch(principal, hop.kind, asked, { batch, requestId, timeoutMs }, signal);
    } catch (error) {
      if (!(error instanceof AuthZenUnimplemented)) throw error;
      // A PDP without AuthZEN: this client asks it the checkResources way from now on.
      forgetAuthZen(options.client);
      return undefined;
    }
  });
}

function guarded<T>(
  principal: Principal,
  options: ToolListingOptions,
  request: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return roundWithDeadline(options, `listing tools for "${principal.id}"`, request);
}
