import type { Value } from "@cerbos/core";
import { GRPC } from "@cerbos/grpc";
import { type Client as GrpcJsClient, status } from "@grpc/grpc-js";
import { SpanStatusCode } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { accessEvaluationBatchPath, decodeBatchResponse } from "../../src/hop-answers/authzen-wire.ts";
import { ProtobufWriter, WireType, writeValueMap } from "../../src/hop-answers/protobuf-wire.ts";
import { createGuard, type Delegation, decideToolCall, SpanAttributes, SpanNames } from "../../src/index.ts";
import { memoryTracing } from "../support/tracing.ts";
import { alice, planner, scribe } from "../support/users.ts";
import { failure, inAlice, readNotes } from "./batch-clients.ts";
import { type PdpProxy, startPdpProxy } from "./pdp-proxy.ts";

describe("fail closed: a batch that goes wrong is a PdpUnavailableError for the round, never an allow", () => {
  let proxy: PdpProxy;
  let client: GRPC;
  let chain: Delegation;
  let upstream: GRPC | undefined;
  /** The real PDP's bytes for a batch, through a direct channel. */
  async function forwardRaw(request: Buffer): Promise<Buffer> {
    upstream ??= new GRPC(inject("pdpGrpcAddress"), { tls: false });
    const channel = (upstream as unknown as { client: GrpcJsClient }).client;
    return new Promise((resolve, reject) =>
      channel.makeUnaryRequest(
        accessEvaluationBatchPath,
        (bytes: Buffer) => bytes,
        (bytes: Buffer) => bytes,
        request,
        (error, response) => (error || response === undefined ? reject(error) : resolve(response)),
      ),
    );
  }
  beforeAll(async () => {
    proxy = await startPdpProxy(inject("pdpGrpcAddress"), { authZen: true });
    client = new GRPC(proxy.address, { tls: false, headers: { "x-tenant": "acme" } });
    chain = await createGuard({ client, timeoutMs: 400 }).forUser(alice).delegate(scribe);
  });
  afterAll(async () => {
    client.close();
    upstream?.close();
    await proxy.close();
  });

  /** The real PDP's answer to `request`, changed by `tamper` and sent back as bytes. */
  const tampered =
    (
      tamper: (evaluations: { decision?: boolean | undefined; context?: Record<string, Value> | undefined }[]) => void,
    ) =>
    async (request: Buffer) => {
      const answer = decodeBatchResponse(await forwardRaw(request));
      tamper(answer.evaluations);
      return { bytes: encodeAnswer(answer.evaluations) };
    };

  const cases: [string, Parameters<PdpProxy["answerBatches"]>[0], string][] = [
    ["one answer short", tampered((answers) => answers.pop()), "error"],
    ["one answer too many", tampered((answers) => answers.push(answers[0] ?? {})), "error"],
    ["no answers", () => ({ bytes: new Uint8Array() }), "error"],
    [
      "a missing decision",
      tampered((answers) => {
        delete answers[1]?.decision;
      }),
      "error",
    ],
    [
      "a decision that contradicts its effect",
      tampered((answers) => {
        for (const answer of answers) answer.decision = true;
      }),
      "error",
    ],
    [
      "no cerbos.response",
      tampered((answers) => {
        if (answers[0] !== undefined) answers[0].context = {};
      }),
      "error",
    ],
    [
      "an answer about another resource",
      tampered((answers) => {
        const response = answers[0]?.context?.["cerbos.response"] as { results: { resource: { id: string } }[] };
        for (const result of response.results) result.resource.id = "read_file";
      }),
      "error",
    ],
    ["bytes that are no answer", () => ({ bytes: Uint8Array.from([0x0a, 0x05, 0x08]) }), "error"],
    ["INTERNAL", () => ({ code: status.INTERNAL, details: "policy check failed" }), "error"],
    ["UNAVAILABLE", () => ({ code: status.UNAVAILABLE, details: "going away" }), "unreachable"],
    ["no answer at all", () => ({ never: true }), "timeout"],
  ];

  for (const [what, answer, expected] of cases) {
    test(`attack: ${what}`, async () => {
      // The call the PDP would deny for the agent: a tampered answer must not turn it into an allow.
      const write = { server: "filesystem", tool: "write_file", arguments: { path: inAlice("x.md") } };
      const { tracer, spans } = memoryTracing();
      const traced = await createGuard({ client, timeoutMs: 400, tracer }).forUser(alice).delegate(planner);
      const before = proxy.batches.length;
      proxy.answerBatches(answer);
      try {
        const error = await failure(traced.authorize(write));
        expect(error.failure).toBe(expected);
        const outcome = await decideToolCall(traced, write);
        expect(outcome.type).toBe("denied");
        expect(outcome.decision).toBeUndefined();
        const span = spans().find((seen) => seen.name === SpanNames.authorize);
        expect(span?.status.code).toBe(SpanStatusCode.ERROR);
        expect(span?.attributes[SpanAttributes.errorType]).toBe("pdp_unavailable");
        expect(proxy.batches.length).toBe(before + 2);
        expect(proxy.checks()).toBe(0); // no fallback to a second opinion: the round failed
      } finally {
        proxy.answerBatches(() => ({ forward: true }));
      }
    });
  }

  test("the client's own headers go with every batch", async () => {
    const decision = await chain.authorize(readNotes);
    expect(decision.allowed).toBe(true);
    expect(proxy.batches.at(-1)?.metadata).toMatchObject({ "x-tenant": "acme" });
  });

  test("the caller's abort ends the round as aborted", async () => {
    proxy.answerBatches(() => ({ never: true }));
    try {
      const controller = new AbortController();
      const pending = chain.authorize(readNotes, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error("user pressed stop")), 50);
      expect((await failure(pending)).failure).toBe("aborted");
    } finally {
      proxy.answerBatches(() => ({ forward: true }));
    }
  });
});

/** Encodes an AccessEvaluationBatchResponse, for answers a test makes up. */
function encodeAnswer(
  evaluations: { decision?: boolean | undefined; context?: Record<string, Value> | undefined }[],
): Uint8Array {
  const writer = new ProtobufWriter();
  for (const evaluation of evaluations) {
    writer.tag(1, WireType.bytes);
    const start = writer.fork();
    if (evaluation.decision !== undefined) {
      writer.tag(1, WireType.varint);
      writer.varint(evaluation.decision ? 1 : 0);
    }
    if (evaluation.context !== undefined) writeValueMap(writer, 2, evaluation.context);
    writer.join(start);
  }
  return writer.finish().slice();
}
