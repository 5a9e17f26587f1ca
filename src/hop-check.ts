import type { AuxData } from "@cerbos/core";
import type { Hop, ToolCallCheck } from "./cerbos-request.ts";
import { DeadlineExceeded, withDeadline } from "./deadline.ts";
import type { HopDecision } from "./decision.ts";
import { PdpUnavailableError } from "./errors.ts";
import { authZenBatchOf, forgetAuthZen } from "./hop-answers/batch-support.ts";
import { AuthZenUnimplemented, askInBatches, canBatch } from "./hop-answers/batched-round.ts";
import { askEachHop } from "./hop-answers/parallel-round.ts";
import { toPdpUnavailable } from "./hop-answers/pdp-failure.ts";
import type { PdpClient } from "./pdp-client.ts";

export { toPdpUnavailable };

/** How to reach the PDP for one round of checks. */
export interface HopCheckOptions {
  client: PdpClient;
  timeoutMs: number;
  requestId: string;
  signal?: AbortSignal | undefined;
  /** `false`: never an AuthZEN batch, one `checkResources` per hop (see `createGuard({ batch })`). */
  batch?: boolean | undefined;
  /** Sent with every check (e.g. the user's JWT, see `guard.forUser(user, { auxData })`). */
  auxData?: AuxData | undefined;
}

/**
 * Asks the PDP about every hop at once and returns their answers in chain order: in one OpenID AuthZEN batch request
 * when the client offers one (see {@link PdpClient}), else one `checkResources` request per hop, in parallel.
 *
 * @remarks
 * Fails closed: any transport error, a round that outlives `timeoutMs` (enforced here, whether or not the client
 * honours its abort signal; the timer is cleared as soon as the round settles), an abort, a malformed or missing
 * answer, or a batch answer of the wrong length throws {@link PdpUnavailableError} for the whole round; a missing
 * effect counts as a deny. A PDP that answers `UNIMPLEMENTED` to the batch is asked again, within the same deadline,
 * the per-hop way, and never asked for a batch again through that client.
 */
export async function checkHops(
  hops: readonly Hop[],
  check: ToolCallCheck,
  options: HopCheckOptions,
): Promise<HopDecision[]> {
  const { client, requestId, timeoutMs } = options;
  const { auxData } = options;
  // auxData goes the checkResources way, where the PDP verifies a JWT as it always has.
  const batch = options.batch === false || auxData !== undefined ? undefined : authZenBatchOf(client);
  return roundWithDeadline(options, "checking the chain", async (signal) => {
    if (batch !== undefined && canBatch(hops, check)) {
      try {
        return await askInBatches(hops, check, { batch, requestId, timeoutMs }, signal);
      } catch (error) {
        if (!(error instanceof AuthZenUnimplemented)) throw error;
        forgetAuthZen(client);
      }
    }
    return askEachHop(hops, check, { client, requestId, timeoutMs, auxData }, signal);
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
