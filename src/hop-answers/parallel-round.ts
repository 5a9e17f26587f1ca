import { type AuxData, type CheckResourcesResponse, Effect } from "@cerbos/core";
import type { Hop, ToolCallCheck } from "../cerbos-request.ts";
import type { DecisionOutput, HopDecision } from "../decision.ts";
import { PdpUnavailableError } from "../errors.ts";
import type { PdpClient } from "../pdp-client.ts";
import { toPdpUnavailable } from "./pdp-failure.ts";

/**
 * Asks the PDP about every hop with its own `checkResources` request, all sent at once, and returns their answers in
 * chain order: what any Cerbos client can do, and the fallback when the PDP answers no AuthZEN batch.
 *
 * @remarks
 * Runs inside the round's deadline (`signal`). Any hop's error, or an answer that cannot be read or is about another
 * resource, throws {@link PdpUnavailableError} for the whole round; a missing effect counts as a deny.
 */
export async function askEachHop(
  hops: readonly Hop[],
  check: ToolCallCheck,
  options: { client: PdpClient; requestId: string; timeoutMs: number; auxData?: AuxData | undefined },
  signal: AbortSignal,
): Promise<HopDecision[]> {
  const responses = await Promise.all(
    hops.map((hop) =>
      options.client
        .checkResources(
          {
            principal: hop.principal,
            resources: [{ resource: check.resource, actions: [check.action] }],
            includeMetadata: true,
            requestId: options.requestId,
            ...(options.auxData === undefined ? {} : { auxData: options.auxData }),
          },
          { signal },
        )
        .catch((error: unknown) => {
          throw toPdpUnavailable(error, {
            at: `checking ${hop.kind} "${hop.actor.id}"`,
            timeoutMs: options.timeoutMs,
          });
        }),
    ),
  );
  return hops.map((hop, index) => {
    try {
      return toHopDecision(hop, check, responses[index] as CheckResourcesResponse);
    } catch (error) {
      // An answer that cannot even be read is no answer: the PDP (or whatever stands in for it) is unavailable.
      if (PdpUnavailableError.isInstance(error)) throw error;
      throw new PdpUnavailableError("error", `PDP answered ${hop.kind} "${hop.actor.id}" with a malformed response`, {
        cause: error,
      });
    }
  });
}

function toHopDecision(hop: Hop, check: ToolCallCheck, response: CheckResourcesResponse): HopDecision {
  const { action } = check;
  const result = response?.results?.[0];
  // An answer about some other resource is no answer about this one.
  if (
    response?.results?.length !== 1 ||
    result?.resource?.kind !== check.resource.kind ||
    result.resource.id !== check.resource.id
  ) {
    throw new PdpUnavailableError(
      "error",
      `PDP answered about another resource than ${check.resource.kind}/${check.resource.id} for ${hop.kind} "${hop.actor.id}"`,
    );
  }
  const effect = result.actions?.[action] === Effect.ALLOW ? "EFFECT_ALLOW" : "EFFECT_DENY";
  const outputs: DecisionOutput[] = (result.outputs ?? [])
    .filter((output) => output.action === action)
    .map((output) => ({ principalId: hop.actor.id, source: output.source, value: output.value }));
  return {
    principalId: hop.actor.id,
    kind: hop.kind,
    depth: hop.depth,
    effect,
    policy: result.metadata?.actions?.[action]?.matchedPolicy ?? "",
    cerbosCallId: response.cerbosCallId,
    outputs,
    source: "pdp",
  };
}
