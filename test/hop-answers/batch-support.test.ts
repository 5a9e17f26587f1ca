import { GRPC } from "@cerbos/grpc";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { grpcAuthZen } from "../../src/hop-answers/grpc-authzen.ts";
import { createGuard, type PdpClient, SpanAttributes, SpanNames } from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { memoryTracing } from "../support/tracing.ts";
import { alice, planner, scribe } from "../support/users.ts";
import { callId, failure, moveInWorkspace, perHopClient, readNotes } from "./batch-clients.ts";
import { type PdpProxy, startPdpProxy } from "./pdp-proxy.ts";

const shared = sharedPdpClient();

describe("which clients offer a batch", () => {
  test("a @cerbos/grpc client does, unless it wants schema validation errors, which only checkResources reports", async () => {
    expect(grpcAuthZen(shared)).toBeDefined();
    expect(grpcAuthZen({ checkResources: shared.checkResources })).toBeUndefined();
    const strict = new GRPC(inject("pdpGrpcAddress"), { tls: false, onValidationError: "throw" });
    try {
      expect(grpcAuthZen(strict)).toBeUndefined();
      const decision = await createGuard({ client: strict }).forUser(alice).authorize(readNotes);
      expect(decision.allowed).toBe(true);
      expect(decision.hops[0]?.cerbosCallId).toMatch(callId);
    } finally {
      strict.close();
    }
  });

  test("a client's own accessEvaluationBatch is used; its UNIMPLEMENTED falls back for good, other errors fail", async () => {
    const perHop = perHopClient(shared);
    let attempts = 0;
    let answer: () => Promise<never> = () => Promise.reject(Object.assign(new Error("no"), { code: 12 }));
    const client: PdpClient = {
      ...perHop,
      accessEvaluationBatch: () => {
        attempts++;
        return answer();
      },
    };
    const root = createGuard({ client }).forUser(alice);
    expect((await root.authorize(readNotes)).allowed).toBe(true);
    expect((await root.authorize(readNotes)).allowed).toBe(true);
    expect([attempts, perHop.checks()]).toEqual([1, 2]);

    const failing: PdpClient = { ...perHopClient(shared), accessEvaluationBatch: () => answer() };
    answer = () => Promise.reject(new TypeError("broken transport"));
    const error = await failure(createGuard({ client: failing }).forUser(alice).authorize(readNotes));
    expect([error.failure, error.message]).toEqual(["error", expect.stringContaining("broken transport")]);
  });
});

describe("a PDP without AuthZEN", () => {
  let proxy: PdpProxy;
  let client: GRPC;
  beforeAll(async () => {
    proxy = await startPdpProxy(inject("pdpGrpcAddress"), { authZen: true });
    proxy.answerBatches(() => ({ code: status.UNIMPLEMENTED, details: "unknown service" }));
    client = new GRPC(proxy.address, { tls: false });
  });
  afterAll(async () => {
    client.close();
    await proxy.close();
  });

  test("is found out once, then asked one checkResources per hop, within the same decision", async () => {
    const { tracer, spans } = memoryTracing();
    const root = createGuard({ client, tracer }).forUser(alice);

    const first = await root.authorize(readNotes);
    expect(first.allowed).toBe(true);
    expect(first.hops[0]?.cerbosCallId).toMatch(callId);
    expect(proxy.batches).toHaveLength(1);

    const chain = await root.delegate(planner);
    const second = await chain.authorize(moveInWorkspace);
    expect(second.allowed).toBe(false);
    expect(second.deniedBy).toBe("planner");
    expect(proxy.batches).toHaveLength(1); // never asked again
    expect(proxy.checks()).toBe(1 + 1 + 2);
    const spansSeen = spans().filter((span) => span.name === SpanNames.authorize);
    expect(spansSeen.map((span) => span.attributes[SpanAttributes.decision])).toEqual(["allow", "deny"]);
  });

  test("a server that does not know the method at all (gRPC's own UNIMPLEMENTED) falls back the same way", async () => {
    const bare = await startPdpProxy(inject("pdpGrpcAddress"), { authZen: false });
    const bareClient = new GRPC(bare.address, { tls: false });
    try {
      const chain = await createGuard({ client: bareClient }).forUser(alice).delegate(scribe);
      const decision = await chain.authorize(moveInWorkspace);
      expect(decision.allowed).toBe(true);
      expect(decision.outputs).toHaveLength(2);
      expect(decision.hops.every((hop) => callId.test(hop.cerbosCallId))).toBe(true);
      expect(bare.checks()).toBe(1 + 2);
    } finally {
      bareClient.close();
      await bare.close();
    }
  });
});
