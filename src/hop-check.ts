import { type CheckResourcesResponse, Effect, Status } from "@cerbos/core";
import type { Hop, ToolCallCheck } from "./cerbos-request.ts";
import { DeadlineExceeded, withDeadline } from "./deadline.ts";
import type { DecisionOutput, HopDecision } from "./decision.ts";
import { PdpUnavailableError } from "./errors.ts";
import type { PdpClient } from "./pdp-client.ts";

/** How to reach the PDP for one round of checks. */
export interface HopCheckOptions {
  client: PdpClient;
  timeoutMs: number;
  requestId: string;
  signal?: AbortSignal | undefined;
}

/**
 * Asks the PDP about every hop at once (one request per hop, in parallel) and returns their answers in chain order.
 *
 * @remarks
 * Fails closed: any hop's transport error, a round that outlives `timeoutMs` (enforced here, whether or not the
 * client honours its abort signal), an abort, or a malformed answer throws {@link PdpUnavailableError} for the
 * whole round; a missing effect counts as a deny.
 */
export async function checkHops(
  hops: readonly Hop[],
  check: ToolCallCheck,
  options: HopCheckOptions,
): Promise<HopDecision[]> {
  const responses = await roundWithDeadline(options, "checking the chain", (signal) =>
    Promise.all(
      hops.map((hop) =>
        options.client
          .checkResources(
            {
              principal: hop.principal,
              resources: [{ resource: check.resource, actions: [check.action] }],
              includeMetadata: true,
              requestId: options.requestId,
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

/**
 * Runs one round of PDP requests under hopguard's own deadline (see {@link withDeadline}), turning whatever fails
 * into a {@link PdpUnavailableError} that says where.
 */
export async function roundWithDeadline<T>(
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
  at: string,
  round: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  try {
    return await withDeadline(options.timeoutMs, options.signal, round);
  } catch (error) {
    if (PdpUnavailableError.isInstance(error)) throw error;
    if (options.signal?.aborted === true && !(error instanceof DeadlineExceeded)) {
      throw new PdpUnavailableError("aborted", `PDP request aborted ${at}`, { cause: error });
    }
    throw toPdpUnavailable(error, { at, timeoutMs: options.timeoutMs });
  }
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
  };
}

/** Turns whatever a Cerbos client threw into a {@link PdpUnavailableError} that says where and why. */
export function toPdpUnavailable(error: unknown, context: { at: string; timeoutMs: number }): PdpUnavailableError {
  const { at } = context;
  if (error instanceof DeadlineExceeded) {
    return new PdpUnavailableError("timeout", `PDP did not answer within ${context.timeoutMs} ms ${at}`, {
      cause: error,
    });
  }
  if (isNotOK(error)) {
    if (error.code === Status.UNAVAILABLE) {
      return new PdpUnavailableError("unreachable", `PDP unreachable ${at}: ${error.details}`, { cause: error });
    }
    if (error.code === Status.CANCELLED) {
      return new PdpUnavailableError("aborted", `PDP request aborted ${at}: ${error.details}`, { cause: error });
    }
    return new PdpUnavailableError("error", `PDP answered ${Status[error.code]} ${at}: ${error.details}`, {
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  const failure = error instanceof Error && error.name === "AbortError" ? "aborted" : "error";
  return new PdpUnavailableError(failure, `PDP request failed ${at}: ${message}`, { cause: error });
}

/** Duck-typed so that a `NotOK` from another installed copy of `@cerbos/core` is still recognised. */
function isNotOK(error: unknown): error is { code: Status; details: string } {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === "number" &&
    typeof (error as { details?: unknown }).details === "string"
  );
}
