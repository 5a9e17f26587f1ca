import { Status } from "@cerbos/core";
import type { AuthZenBatchClient, PdpClient } from "../pdp-client.ts";
import { grpcAuthZen } from "./grpc-authzen.ts";

// Per client, once: how to send it a batch, or null for "not offered" (no way to send one, or the PDP answered
// UNIMPLEMENTED). A client is a long-lived object, so this is decided once, not per round.
const batches = new WeakMap<object, AuthZenBatchClient | null>();

/**
 * How to send `client`'s PDP an AuthZEN batch: the client's own `accessEvaluationBatch`, else the channel of a
 * `@cerbos/grpc` client; `undefined` when neither exists or the PDP was found not to offer one.
 */
export function authZenBatchOf(client: PdpClient): AuthZenBatchClient | undefined {
  let batch = batches.get(client);
  if (batch === undefined) {
    const own = client.accessEvaluationBatch;
    batch =
      typeof own === "function"
        ? { accessEvaluationBatch: (request, options) => own.call(client, request, options) }
        : (grpcAuthZen(client) ?? null);
    batches.set(client, batch);
  }
  return batch ?? undefined;
}

/** Remembers that `client`'s PDP does not serve AuthZEN, so that no later round asks it again. */
export function forgetAuthZen(client: PdpClient): void {
  batches.set(client, null);
}

/** Whether `error` says the PDP has no such method: gRPC `UNIMPLEMENTED`, e.g. a Cerbos older than 0.48. */
export function isUnimplemented(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === Status.UNIMPLEMENTED;
}
