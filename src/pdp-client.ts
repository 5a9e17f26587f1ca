import type { Client } from "@cerbos/core";
import type { AccessEvaluationBatchRequest, AccessEvaluationBatchResponse } from "./hop-answers/authzen-messages.ts";

/**
 * The part of a Cerbos client hopguard uses. Any `@cerbos/grpc` `GRPC` (or `@cerbos/http` `HTTP`) client fits; a
 * unit test can fake exactly this seam. `planResources` is only used to list the tools a chain could call.
 *
 * @remarks
 * Every hop of one decision goes to the PDP in one OpenID AuthZEN batch when the client offers one: a client with an
 * {@link AuthZenBatchClient.accessEvaluationBatch} method, or a `@cerbos/grpc` `GRPC` client, whose own channel (and
 * headers) hopguard sends the batch over. Otherwise, or when the PDP answers `UNIMPLEMENTED` (a Cerbos without
 * AuthZEN; hopguard then stops trying with that client), each hop gets its own `checkResources`, sent in parallel.
 */
export type PdpClient = Pick<Client, "checkResources" | "planResources"> & Partial<AuthZenBatchClient>;

/** A client that sends OpenID AuthZEN access-evaluation batches to the PDP (Cerbos serves them from 0.48 on). */
export interface AuthZenBatchClient {
  /**
   * Sends one batch and resolves to its answers, one per evaluation, in order. Rejects with the transport's error; an
   * error with `code` 12 (gRPC `UNIMPLEMENTED`) says the PDP has no AuthZEN, and hopguard falls back to
   * `checkResources` for good.
   */
  accessEvaluationBatch(
    request: AccessEvaluationBatchRequest,
    options: { signal: AbortSignal },
  ): Promise<AccessEvaluationBatchResponse>;
}
