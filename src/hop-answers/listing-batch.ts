import type { Principal } from "@cerbos/core";
import type { HopKind } from "../decision.ts";
import { PdpUnavailableError } from "../errors.ts";
import type { AuthZenBatchClient } from "../pdp-client.ts";
import type { PlanCacheCheck } from "../plan-cache/plan-cache.ts";
import { isUnimplemented } from "./batch-support.ts";
import { AuthZenUnimplemented, resourceProperties, subjectFor } from "./batched-round.ts";
import { toPdpUnavailable } from "./pdp-failure.ts";

/**
 * For a listing: whether one principal may take each check's action, asked in one AuthZEN batch without meta (an
 * answer with meta repeats the whole group's response in every evaluation: ten times slower at 50 tools). Answers in
 * the order of `checks`.
 *
 * @remarks
 * Every check must have its own resource id (the listing gives each its index): Cerbos judges evaluations that share
 * a subject id, resource kind and id together, by the first one's attributes. `UNIMPLEMENTED` throws
 * {@link AuthZenUnimplemented}; any other failure, an answer of the wrong length or one without a boolean decision,
 * {@link PdpUnavailableError}.
 */
export async function askListingBatch(
  principal: Principal,
  kind: HopKind,
  checks: readonly PlanCacheCheck[],
  options: { batch: AuthZenBatchClient; requestId: string; timeoutMs: number },
  signal: AbortSignal,
): Promise<boolean[]> {
  const response = await options.batch
    .accessEvaluationBatch(
      {
        subject: subjectFor(principal, kind),
        context: { "cerbos.requestId": options.requestId },
        evaluations: checks.map(({ resource, action }) => ({
          resource: { type: resource.kind, id: resource.id, properties: resourceProperties(resource) },
          action: { name: action },
        })),
      },
      { signal },
    )
    .catch((error: unknown) => {
      if (isUnimplemented(error)) throw new AuthZenUnimplemented({ cause: error });
      throw toPdpUnavailable(error, { at: `listing tools for "${principal.id}"`, timeoutMs: options.timeoutMs });
    });
  const evaluations: unknown = response?.evaluations;
  if (!Array.isArray(evaluations) || evaluations.length !== checks.length) {
    throw new PdpUnavailableError("error", `PDP answered a listing batch of ${checks.length} with another count`);
  }
  return evaluations.map((answer: unknown) => {
    const decision =
      typeof answer === "object" && answer !== null && Object.hasOwn(answer, "decision")
        ? (answer as { decision: unknown }).decision
        : undefined;
    if (typeof decision !== "boolean") {
      throw new PdpUnavailableError("error", `PDP answered a listing batch for "${principal.id}" without a decision`);
    }
    return decision;
  });
}
