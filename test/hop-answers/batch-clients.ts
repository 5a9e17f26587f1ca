import type { GRPC } from "@cerbos/grpc";
import { expect } from "vitest";
import type { AccessEvaluationBatchRequest } from "../../src/hop-answers/authzen-messages.ts";
import { grpcAuthZen } from "../../src/hop-answers/grpc-authzen.ts";
import { type Decision, type PdpClient, PdpUnavailableError, type ToolCall } from "../../src/index.ts";
import type { AuthZenBatchClient } from "../../src/pdp-client.ts";

/** A client that counts what it sends: AuthZEN batches (over `inner`'s channel) and checkResources. */
export function countingClient(inner: GRPC) {
  const batch = grpcAuthZen(inner) as AuthZenBatchClient;
  const sent = { batches: [] as AccessEvaluationBatchRequest[], checks: 0, signals: [] as AbortSignal[] };
  const client: PdpClient = {
    checkResources: (request, options) => {
      sent.checks++;
      return inner.checkResources(request, options);
    },
    planResources: (request, options) => inner.planResources(request, options),
    accessEvaluationBatch: (request, options) => {
      sent.batches.push(structuredClone(request));
      sent.signals.push(options.signal);
      return batch.accessEvaluationBatch(request, options);
    },
  };
  return { client, sent };
}

/** The same client with no batch to offer: today's one checkResources per hop. */
export function perHopClient(inner: PdpClient): PdpClient & { checks: () => number } {
  let checks = 0;
  return {
    checkResources: (request, options) => {
      checks++;
      return inner.checkResources(request, options);
    },
    planResources: (request, options) => inner.planResources(request, options),
    checks: () => checks,
  };
}

/** A decision without what only the transport decides: its request id and the hops' Cerbos call ids. */
export function comparable(decision: Decision) {
  const { requestId: _requestId, hops, outputs, ...rest } = decision;
  // A denied hop's outputs (of rules that matched before a deny won) come and go with Cerbos's evaluation order, on
  // either path: measured, ivan → planner moving inside his workspace reports the move rule's output in most answers
  // and not in others, batched or not. Only an allowed hop's outputs — approvals — are compared.
  const allowedOnly = (hop: Pick<Decision["hops"][number], "effect" | "outputs">) =>
    hop.effect === "EFFECT_ALLOW" ? hop.outputs : [];
  return {
    ...rest,
    outputs: hops.flatMap(allowedOnly),
    hops: hops.map(({ cerbosCallId: _callId, ...hop }) => ({ ...hop, outputs: allowedOnly(hop) })),
  };
}

/** The PdpUnavailableError `attempt` rejects with; fails the test on anything else. */
export async function failure(attempt: Promise<unknown>): Promise<PdpUnavailableError> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(PdpUnavailableError.isInstance(error), `expected PdpUnavailableError, got ${String(error)}`).toBe(true);
  return error as PdpUnavailableError;
}

/** A Cerbos call id, as checkResources answers carry (AuthZEN answers carry none). */
export const callId = /^[0-9A-Z]{26}$/;

export const inAlice = (file: string) => `/workspace/alice/${file}`;
/** Allowed for alice and for writer agents, with an approval output from each hop. */
export const moveInWorkspace: ToolCall = {
  server: "filesystem",
  tool: "move_file",
  arguments: { source: inAlice("a.md"), destination: inAlice("b.md") },
};
export const readNotes: ToolCall = {
  server: "filesystem",
  tool: "read_file",
  arguments: { path: inAlice("notes.md") },
};
