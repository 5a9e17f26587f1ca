import { GRPC } from "@cerbos/grpc";
import { context, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { describe, expect, test } from "vitest";
import { createGuard, DelegationError, HopEventAttributes, SpanAttributes, SpanNames } from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { memoryTracing, onlySpan } from "./support/tracing.ts";
import { alice, planner, researcher, scribe } from "./support/users.ts";

const client = sharedPdpClient();
const writeReport = {
  server: "filesystem",
  tool: "write_file",
  arguments: { path: "/workspace/alice/report.md", content: "x" },
  toolCallId: "call_42",
};

describe("decision spans", () => {
  test("an authorize span names the user, chain, agent, tool, call id, verdict and every hop", async () => {
    const tracing = memoryTracing();
    const guard = createGuard({ client, tracer: tracing.tracer });
    const chain = await (await guard.forUser(alice).delegate(planner)).delegate(researcher);
    tracing.reset();

    const decision = await chain.authorize({ ...writeReport, tool: "read_file" });
    const span = onlySpan(tracing.spans(), SpanNames.authorize);

    expect(span.attributes).toMatchObject({
      [SpanAttributes.userId]: "alice",
      [SpanAttributes.chain]: ["alice", "planner", "researcher"],
      [SpanAttributes.depth]: 2,
      [SpanAttributes.agentId]: "researcher",
      [SpanAttributes.agentName]: "researcher",
      [SpanAttributes.server]: "filesystem",
      [SpanAttributes.toolName]: "read_file",
      [SpanAttributes.toolCallId]: "call_42",
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.hopEffects]: ["EFFECT_ALLOW", "EFFECT_ALLOW", "EFFECT_ALLOW"],
      [SpanAttributes.hopCallIds]: decision.hops.map((hop) => hop.cerbosCallId),
      [SpanAttributes.requestId]: span.spanContext().traceId,
      [SpanAttributes.requestIdSource]: "trace",
    });
    expect(decision.requestId).toBe(span.spanContext().traceId);
    expect(span.attributes[SpanAttributes.deniedBy]).toBeUndefined();
    expect(span.events.map((event) => event.attributes?.[HopEventAttributes.principalId])).toEqual([
      "alice",
      "planner",
      "researcher",
    ]);
    expect(span.events[1]?.attributes).toMatchObject({
      [HopEventAttributes.kind]: "agent",
      [HopEventAttributes.depth]: 1,
      [HopEventAttributes.effect]: "EFFECT_ALLOW",
      [HopEventAttributes.policy]: "resource.mcp::filesystem.vdefault",
    });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  test("without a context manager the request id is random, and the span says so", async () => {
    const tracing = memoryTracing();
    const chain = await createGuard({ client, tracer: tracing.tracer }).forUser(alice).delegate(planner);
    tracing.reset();
    // What an app gets when it registers a provider but no context manager: no span is ever active.
    context.disable();
    try {
      const decision = await chain.authorize({ ...writeReport, tool: "read_file" });
      const span = onlySpan(tracing.spans(), SpanNames.authorize);
      expect(decision.requestId).not.toBe(span.spanContext().traceId);
      expect(span.attributes).toMatchObject({
        [SpanAttributes.requestId]: decision.requestId,
        [SpanAttributes.requestIdSource]: "random",
      });
    } finally {
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    }
  });

  test("a denied call records the denying hop; the span is not an error", async () => {
    const tracing = memoryTracing();
    const chain = await createGuard({ client, tracer: tracing.tracer }).forUser(alice).delegate(planner);
    tracing.reset();
    await chain.authorize(writeReport);
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.attributes[SpanAttributes.decision]).toBe("deny");
    expect(span.attributes[SpanAttributes.deniedBy]).toBe("planner");
    expect(span.attributes[SpanAttributes.hopEffects]).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });

  test("is a child of the active span, so it nests under a framework's tool span", async () => {
    const tracing = memoryTracing();
    const root = createGuard({ client, tracer: tracing.tracer }).forUser(alice);
    await tracing.tracer.startActiveSpan("execute_tool read_file", async (toolSpan) => {
      await root.authorize({ ...writeReport, tool: "read_file" });
      toolSpan.end();
    });
    const toolSpan = onlySpan(tracing.spans(), "execute_tool read_file");
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.parentSpanContext?.spanId).toBe(toolSpan.spanContext().spanId);
    expect(span.spanContext().traceId).toBe(toolSpan.spanContext().traceId);
  });

  test("a PDP error sets status ERROR with the error code", async () => {
    const tracing = memoryTracing();
    const unreachable = new GRPC("127.0.0.1:9", { tls: false });
    try {
      const root = createGuard({ client: unreachable, tracer: tracing.tracer, timeoutMs: 2000 }).forUser(alice);
      await expect(root.authorize(writeReport)).rejects.toThrow(/PDP/);
      const span = onlySpan(tracing.spans(), SpanNames.authorize);
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
      expect(span.attributes[SpanAttributes.decision]).toBe("error");
      expect(span.attributes[SpanAttributes.errorType]).toBe("pdp_unavailable");
      expect(span.events.some((event) => event.name === "exception")).toBe(true);
    } finally {
      unreachable.close();
    }
  });

  test("a delegate span records allowed and refused delegations; a refusal is a deny, not an error", async () => {
    const tracing = memoryTracing();
    const root = createGuard({ client, tracer: tracing.tracer }).forUser(alice);
    const fromPlanner = await root.delegate(planner);
    await expect(fromPlanner.delegate({ id: "planner-2", roles: ["agent", "planner"] })).rejects.toThrow(
      DelegationError,
    );
    const [allowed, refused] = tracing.spans().filter((span) => span.name === SpanNames.delegate);
    expect(allowed?.attributes).toMatchObject({
      [SpanAttributes.chain]: ["alice"],
      [SpanAttributes.delegateTo]: "planner",
      [SpanAttributes.decision]: "allow",
    });
    expect(refused?.attributes).toMatchObject({
      [SpanAttributes.chain]: ["alice", "planner"],
      [SpanAttributes.delegateTo]: "planner-2",
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "planner",
    });
    expect(refused?.status.code).toBe(SpanStatusCode.UNSET);
  });

  test("with no tracer provider registered, spans do not record and the trace id is not used", async () => {
    expect(trace.getActiveSpan()).toBeUndefined();
    const decision = await createGuard({ client })
      .forUser(alice)
      .authorize({ ...writeReport, tool: "read_file" });
    expect(decision.allowed).toBe(true);
    expect(decision.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("an allowed call that a rule wants a person to approve says so on its span", async () => {
    const tracing = memoryTracing();
    const chain = await createGuard({ client, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
    tracing.reset();
    await chain.authorize({
      server: "filesystem",
      tool: "move_file",
      arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
    });
    await chain.authorize({ ...writeReport });
    const [move, write] = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(move?.attributes).toMatchObject({
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.approval]: "required",
    });
    expect(write?.attributes[SpanAttributes.decision]).toBe("allow");
    expect(write?.attributes[SpanAttributes.approval]).toBeUndefined();
  });

  test("a provider registered after the guard was created still gets the spans", async () => {
    const guard = createGuard({ client });
    const tracing = memoryTracing();
    trace.setGlobalTracerProvider(tracing.provider);
    try {
      await guard.forUser(alice).authorize({ ...writeReport, tool: "read_file" });
      expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes[SpanAttributes.decision]).toBe("allow");
    } finally {
      trace.disable();
    }
  });

  test("a person's answer is a hopguard.approval span: approved, or declined with who and why", async () => {
    const tracing = memoryTracing();
    const chain = await createGuard({ client, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
    const move = {
      server: "filesystem",
      tool: "move_file",
      arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
      toolCallId: "call_7",
    };
    const decision = await chain.authorize(move);
    tracing.reset();

    expect(chain.recordApproval(decision, { approved: true, approver: "carol" })).toBe(decision);
    const declined = chain.recordApproval(decision, { approved: false, approver: "dave", reason: "not today" });

    expect(declined).toMatchObject({ allowed: false, deniedBy: "approval" });
    expect(declined.reason).toMatch(/did not approve it \(dave\): not today/);
    const [yes, no] = tracing.spans().filter((span) => span.name === SpanNames.approval);
    expect(yes?.attributes).toMatchObject({
      [SpanAttributes.approval]: "approved",
      [SpanAttributes.approver]: "carol",
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.toolName]: "move_file",
      [SpanAttributes.toolCallId]: "call_7",
      [SpanAttributes.chain]: ["alice", "scribe"],
    });
    expect(yes?.attributes[SpanAttributes.deniedBy]).toBeUndefined();
    expect(no?.attributes).toMatchObject({
      [SpanAttributes.approval]: "declined",
      [SpanAttributes.approver]: "dave",
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "approval",
    });
  });

  test("only an allowed decision of the same chain can be approved", async () => {
    const guard = createGuard({ client });
    const scribeChain = await guard.forUser(alice).delegate(scribe);
    const plannerChain = await guard.forUser(alice).delegate(planner);
    const denied = await plannerChain.authorize({ ...writeReport });
    const allowed = await scribeChain.authorize({ ...writeReport });
    expect(denied.allowed).toBe(false);
    expect(() => plannerChain.recordApproval(denied, { approved: true })).toThrow(/allowed decision of this chain/);
    expect(() => plannerChain.recordApproval(allowed, { approved: true })).toThrow(/allowed decision of this chain/);
    expect(scribeChain.recordApproval(allowed, { approved: "yes" as unknown as boolean }).allowed).toBe(false);
  });

  test("the span names the call as it was checked, even when the caller's getters answer differently later", async () => {
    const tracing = memoryTracing();
    const chain = createGuard({ client, tracer: tracing.tracer }).forUser(alice);
    let reads = 0;
    const call = {
      server: "filesystem",
      get tool() {
        reads += 1;
        return reads === 1 ? "read_file" : "write_file";
      },
      arguments: { path: "/workspace/alice/notes.md" },
    };
    const decision = await chain.authorize(call);
    expect(decision.subject).toMatchObject({ tool: "read_file" });
    expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes[SpanAttributes.toolName]).toBe("read_file");
    expect(reads).toBe(1);
  });

  test("a tracer that throws never changes a decision: allow stays allow, deny stays deny", async () => {
    const broken = {
      startSpan: () => {
        throw new Error("exporter down");
      },
      startActiveSpan: () => {
        throw new Error("exporter down");
      },
    } as unknown as Tracer;
    const chain = await createGuard({ client, tracer: broken }).forUser(alice).delegate(planner);
    expect((await chain.authorize({ ...writeReport, tool: "read_file" })).allowed).toBe(true);
    expect((await chain.authorize({ ...writeReport })).allowed).toBe(false);
  });
});
