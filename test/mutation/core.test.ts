import { Effect } from "@cerbos/core";
import { context, trace } from "@opentelemetry/api";
import { afterEach, describe, expect, test, vi } from "vitest";
import { identityKey } from "../../src/actor.ts";
import { isToolCallSnapshot } from "../../src/cerbos-request.ts";
import {
  createGuard,
  Delegation,
  DelegationError,
  decideToolCall,
  type HopguardErrorCode,
  InvalidInputError,
  SpanAttributes,
  SpanNames,
  type ToolCallOutcome,
  validateToolCall,
} from "../../src/index.ts";
import { scopeAdmitsTool } from "../../src/scope.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { memoryTracing, onlySpan } from "../support/tracing.ts";
import { alice, planner, researcher } from "../support/users.ts";
import { fakePdp } from "./fake-pdp.ts";

const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };

async function thrown(attempt: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof attempt === "function" ? attempt() : attempt);
  } catch (error) {
    return error;
  }
  throw new Error("expected a throw");
}

async function expectInvalid(attempt: Promise<unknown> | (() => unknown), path: string, message: string) {
  const error = await thrown(attempt);
  expect(InvalidInputError.isInstance(error), `expected an InvalidInputError, got ${String(error)}`).toBe(true);
  expect((error as InvalidInputError).path).toBe(path);
  expect((error as InvalidInputError).message).toBe(`${path}: ${message}`);
}

async function expectDelegationError(attempt: Promise<unknown>, code: HopguardErrorCode): Promise<DelegationError> {
  const error = await thrown(attempt);
  expect(DelegationError.isInstance(error), `expected a DelegationError, got ${String(error)}`).toBe(true);
  expect((error as DelegationError).code).toBe(code);
  return error as DelegationError;
}

type Denial = Extract<ToolCallOutcome, { type: "denied" }>;

/** The outcome as a refusal; fails the test when it is not one. */
function denial(outcome: ToolCallOutcome): Denial {
  expect(outcome.type).toBe("denied");
  return outcome as Denial;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("security: mutants that would let a call or a delegation through", () => {
  test("a look-alike id that only case-folds to one already in the chain is a cycle (ẞ folds to ß)", async () => {
    const pdp = fakePdp();
    const guard = createGuard({ client: pdp.client });
    const strasse = await guard.forUser(alice).delegate({ id: "straße", roles: ["agent"] });
    const asked = pdp.requests.length;
    const error = await expectDelegationError(strasse.delegate({ id: "STRAẞE", roles: ["agent"] }), "delegation_cycle");
    expect(error.message).toBe('"STRAẞE" is already in the chain alice → straße');
    expect(pdp.requests.length).toBe(asked);
    expect(identityKey("STRAẞE")).toBe(identityKey("straße"));
  });

  test.each([
    ["tool", { server: "filesystem", tool: "write\u200bfile" }, "call.tool"],
    ["tool", { server: "filesystem", tool: "read_file\u0007" }, "call.tool"],
    ["server", { server: "file\u2066system", tool: "read_file" }, "call.server"],
  ])("a %s name with an invisible or control character is refused before the PDP is asked", async (_, call, path) => {
    const pdp = fakePdp();
    const chain = createGuard({ client: pdp.client }).forUser(alice);
    const outcome = denial(await decideToolCall(chain, call));
    expect(outcome.decision).toBeUndefined();
    expect(outcome.error?.message).toBe(`${path}: must not contain control or invisible (format) characters`);
    await expectInvalid(
      () => validateToolCall(call),
      path,
      "must not contain control or invisible (format) characters",
    );
    expect(pdp.requests).toEqual([]);
  });

  test("a chain is expired at the very millisecond of its expiry: no call, no delegation, no tool listed", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const start = Date.UTC(2030, 0, 1);
    vi.setSystemTime(start);
    const pdp = fakePdp();
    const guard = createGuard({ client: pdp.client });
    const chain = guard.forUser(alice, { scope: { expiresAt: start + 1000 } });
    vi.setSystemTime(start + 1000);
    const decision = await chain.authorize(readNotes);
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("scope");
    expect(decision.reason).toBe('denied by scope: user "alice" expired at 2030-01-01T00:00:01.000Z');
    expect(decision.outputs).toEqual([]);
    const error = await expectDelegationError(chain.delegate(planner), "delegation_expired");
    expect(error.message).toBe('user "alice" expired at 2030-01-01T00:00:01.000Z');
    expect(await chain.callableTools([{ server: "filesystem", tool: "read_file" }])).toEqual([]);
    expect(pdp.requests).toEqual([]);
  });

  test("a '*' in a tool or server name is a character, never a wildcard a narrower pattern can match", async () => {
    const pdp = fakePdp();
    const guard = createGuard({ client: pdp.client });
    const chain = guard.forUser(alice, { scope: { tools: ["filesystem/readfile", "notes/list"] } });
    for (const call of [
      { server: "filesystem", tool: "read*file" },
      { server: "no*tes", tool: "list" },
    ]) {
      const decision = await chain.authorize(call);
      expect(decision.allowed).toBe(false);
      expect(decision.deniedBy).toBe("scope");
    }
    expect(pdp.requests).toEqual([]);
    const scope = { tools: ["filesystem/readfile"], expiresAt: undefined, maxDepth: 5 };
    expect(scopeAdmitsTool(scope, "filesystem", "read*file")).toBe(false);
    expect(scopeAdmitsTool(scope, "filesystem", "readfile")).toBe(true);
    expect(scopeAdmitsTool({ ...scope, tools: ["filesystem/read*"] }, "filesystem", "read*file")).toBe(true);
  });
});

describe("input errors say where and what", () => {
  const guard = createGuard({ client: fakePdp().client });

  test("a user that is not an object, or whose id or roles are bad", async () => {
    await expectInvalid(() => guard.forUser(null as never), "user", "must be an object");
    await expectInvalid(() => guard.forUser("alice" as never), "user", "must be an object");
    await expectInvalid(
      () => guard.forUser({ id: 42 as never, roles: ["user"] }),
      "user.id",
      "must be a non-empty string",
    );
    await expectInvalid(() => guard.forUser({ id: "", roles: ["user"] }), "user.id", "must be a non-empty string");
    await expectInvalid(() => guard.forUser({ id: "  ", roles: ["user"] }), "user.id", "must be a non-empty string");
    await expectInvalid(
      () => guard.forUser({ id: " alice", roles: ["user"] }),
      "user.id",
      "must not start or end with white space",
    );
    await expectInvalid(
      () => guard.forUser({ id: "al\u200bice", roles: ["user"] }),
      "user.id",
      "must not contain control or invisible (format) characters",
    );
    await expectInvalid(
      () => guard.forUser({ id: "alice", roles: [] }),
      "user.roles",
      "must be a non-empty array of role names",
    );
    await expectInvalid(
      () => guard.forUser({ id: "alice", roles: ["user"], attr: "x" as never }),
      "user.attr",
      "must be a plain object, got a string",
    );
    await expectInvalid(
      () => guard.forUser({ id: "alice", roles: ["user"], attr: [1] as never }),
      "user.attr",
      "must be a plain object, got an array",
    );
    expect(guard.forUser({ id: "alice", roles: ["user"], attr: null as never }).user.attr).toEqual({});
  });

  test("a tool call that is not an object, or whose names or id are bad", async () => {
    await expectInvalid(() => validateToolCall(null as never), "call", "must be an object");
    await expectInvalid(() => validateToolCall("filesystem/read_file" as never), "call", "must be an object");
    await expectInvalid(() => validateToolCall({ server: "a/b", tool: "t" }), "call.server", "must not contain '/'");
    await expectInvalid(() => validateToolCall({ server: "", tool: "t" }), "call.server", "must be a non-empty string");
    await expectInvalid(() => validateToolCall({ server: "s", tool: "" }), "call.tool", "must be a non-empty string");
    await expectInvalid(
      () => validateToolCall({ server: "s", tool: "t", toolCallId: 5 as never }),
      "call.toolCallId",
      "must be a string",
    );
  });

  test("a scope that is not one, at the root and below", async () => {
    const at = (scope: unknown) => () => guard.forUser(alice, { scope: scope as never });
    await expectInvalid(
      at({ tools: "filesystem/read_file" }),
      "scope.tools",
      "must be an array of 'server/tool' patterns",
    );
    await expectInvalid(
      at({ tools: ["filesystem/read_file", 5] }),
      "scope.tools[1]",
      'must look like "server/tool", got 5',
    );
    await expectInvalid(
      at({ expiresAt: "soon" }),
      "scope.expiresAt",
      "must be a Date, an ISO-8601 string or epoch milliseconds",
    );
    await expectInvalid(
      at({ expiresAt: 9e15 }),
      "scope.expiresAt",
      "must be within ±8640000000000000 epoch milliseconds (what a Date can hold)",
    );
    await expectInvalid(at({ maxDepth: -1 }), "scope.maxDepth", "must be a whole number ≥ 0");
    const root = guard.forUser(alice);
    await expectInvalid(
      root.delegate({ ...planner, scope: { tools: ["nope"] } }),
      "agent.scope.tools[0]",
      'must look like "server/tool", got "nope"',
    );
    await expectInvalid(
      root.delegate({ ...planner, scope: { maxDepth: 1.5 } }),
      "agent.scope.maxDepth",
      "must be a whole number ≥ 0",
    );
  });

  test("a snapshot is registered, and is never copied again", async () => {
    const snapshot = validateToolCall(readNotes);
    expect(snapshot).not.toBe(readNotes);
    expect(isToolCallSnapshot(snapshot)).toBe(true);
    expect(validateToolCall(snapshot)).toBe(snapshot);
    expect(isToolCallSnapshot({ ...snapshot })).toBe(false);
    expect(isToolCallSnapshot(null)).toBe(false);
    expect(isToolCallSnapshot("filesystem/read_file")).toBe(false);
    const outcome = await decideToolCall(guard.forUser(alice), readNotes);
    expect(outcome.type).toBe("allowed");
    if (outcome.type !== "allowed") return;
    expect(isToolCallSnapshot(outcome.call)).toBe(true);
    expect(validateToolCall(outcome.call)).toBe(outcome.call);
    expect(Delegation.isDelegation(null)).toBe(false);
    expect(Delegation.isDelegation("alice")).toBe(false);
    expect(Delegation.isDelegation(guard.forUser(alice))).toBe(true);
  });
});

describe("delegation errors and reasons", () => {
  const pdp = fakePdp((request) =>
    request.principal.id === "planner" ? { effect: Effect.DENY, metadata: undefined } : {},
  );
  const guard = createGuard({ client: pdp.client, maxDepth: 2 });

  test("the root has no agent, a delegated chain does", async () => {
    const root = guard.forUser(alice);
    expect(root.agent).toBeUndefined();
    expect((await root.delegate(researcher)).agent?.id).toBe("researcher");
  });

  test("each refusal of delegate says why", async () => {
    const root = guard.forUser(alice, {
      scope: { tools: ["filesystem/read_file", "memory/*"], expiresAt: "2100-01-01" },
    });
    const researching = await root.delegate(researcher);
    const widened = await expectDelegationError(
      root.delegate({ ...researcher, id: "r2", scope: { tools: ["filesystem/write_file"] } }),
      "scope_widened",
    );
    expect(widened.message).toBe(
      '"r2" asked for more than user "alice" holds: tools filesystem/write_file not within [filesystem/read_file, memory/*]',
    );
    const later = await expectDelegationError(
      root.delegate({ ...researcher, id: "r3", scope: { expiresAt: "2101-01-01" } }),
      "scope_widened",
    );
    expect(later.message).toBe(
      '"r3" asked for more than user "alice" holds: expiresAt 2101-01-01T00:00:00.000Z is after 2100-01-01T00:00:00.000Z',
    );
    const deeper = await expectDelegationError(
      root.delegate({ ...researcher, id: "r4", scope: { maxDepth: 3 } }),
      "scope_widened",
    );
    expect(deeper.message).toBe('"r4" asked for more than user "alice" holds: maxDepth 3 is above 2');
    const shallow = await expectDelegationError(
      root.delegate({ ...researcher, id: "r5", scope: { maxDepth: 0 } }),
      "depth_exceeded",
    );
    expect(shallow.message).toBe('"r5" would sit at depth 1 but asked for maxDepth 0');
    const past = await expectDelegationError(
      root.delegate({ ...researcher, id: "r6", scope: { expiresAt: "2001-01-01" } }),
      "delegation_expired",
    );
    expect(past.message).toBe('"r6" asked for a delegation that expired at 2001-01-01T00:00:00.000Z');
    const cycle = await expectDelegationError(
      researching.delegate({ id: "Alice", roles: ["agent"] }),
      "delegation_cycle",
    );
    expect(cycle.message).toBe('"Alice" is already in the chain alice → researcher');

    const outside = await researching.authorize({ server: "filesystem", tool: "write_file" });
    expect(outside.reason).toBe(
      'denied by scope: filesystem/write_file is outside agent "researcher"\'s delegated tools [filesystem/read_file, memory/*]',
    );
    expect(outside.outputs).toEqual([]);
  });

  test("a delegation the PDP denies carries its subject, and the reason names hop, policy and agent", async () => {
    const root = guard.forUser(alice);
    const denied = await expectDelegationError(
      (await root.delegate(planner)).delegate(researcher),
      "delegation_denied",
    );
    expect(denied.decision?.subject).toEqual({ type: "delegation", agentId: "researcher" });
    expect(denied.message).toBe(
      'denied by agent "planner" (hop 1 of alice → planner): may not delegate to "researcher" (no policy matched)',
    );
    const planning = await root.delegate(planner);
    const decision = await planning.authorize(readNotes);
    expect(decision.reason).toBe(
      'denied by agent "planner" (hop 1 of alice → planner): may not call filesystem/read_file (no policy matched)',
    );
    const allowed = await root.authorize(readNotes);
    expect(allowed.reason).toBe("allowed: every hop of alice may call filesystem/read_file");
    const policyDeny = fakePdp(() => ({ effect: Effect.DENY }));
    const denying = await createGuard({ client: policyDeny.client }).forUser(alice).authorize(readNotes);
    expect(denying.reason).toBe(
      'denied by user "alice" (hop 0 of alice): may not call filesystem/read_file (policy resource.fake.vdefault)',
    );
  });

  test("the request id is the active trace id, else a fresh UUID, and is what the PDP was sent", async () => {
    const recording = fakePdp();
    const untraced = await createGuard({ client: recording.client }).forUser(alice).authorize(readNotes);
    expect(untraced.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(recording.requests.at(-1)?.requestId).toBe(untraced.requestId);
    const tracing = memoryTracing();
    const chain = createGuard({ client: recording.client, tracer: tracing.tracer }).forUser(alice);
    const traced = await chain.authorize(readNotes);
    expect(traced.requestId).toBe(onlySpan(tracing.spans(), SpanNames.authorize).spanContext().traceId);
    expect(recording.requests.at(-1)?.requestId).toBe(traced.requestId);
    const root = tracing.tracer.startSpan("app");
    const delegated = await context.with(trace.setSpan(context.active(), root), () => chain.delegate(researcher));
    root.end();
    expect(recording.requests.at(-1)?.requestId).toBe(root.spanContext().traceId);
    expect(delegated.chain).toEqual(["alice", "researcher"]);
    const untracedDelegate = fakePdp();
    await createGuard({ client: untracedDelegate.client }).forUser(alice).delegate(researcher);
    expect(untracedDelegate.requests[0]?.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("a delegate call that cannot be read", () => {
  test("is an input error, and its span still names what was asked for", async () => {
    const tracing = memoryTracing();
    const pdp = fakePdp();
    const root = createGuard({ client: pdp.client, tracer: tracing.tracer }).forUser(alice);
    const error = await thrown(root.delegate(null as never));
    expect(InvalidInputError.isInstance(error), `expected an InvalidInputError, got ${String(error)}`).toBe(true);
    const span = onlySpan(tracing.spans(), SpanNames.delegate);
    expect(span.attributes[SpanAttributes.delegateTo]).toBe("undefined");
    expect(span.attributes[SpanAttributes.userId]).toBe("alice");
    expect(pdp.requests).toEqual([]);
  });
});

describe("recordApproval", () => {
  const tracing = memoryTracing();
  const guard = createGuard({ client: fakePdp().client, tracer: tracing.tracer });

  test("refuses what is not an allowed decision of this chain, with a clear error", async () => {
    const chain = guard.forUser(alice);
    await expectInvalid(
      () => chain.recordApproval(undefined as never, { approved: true }),
      "decision",
      "must be an allowed decision of this chain",
    );
  });

  test.each([
    [undefined, "a person did not approve it", undefined],
    [{ approved: false, reason: "" }, "a person did not approve it", undefined],
    [{ approved: false, approver: 42, reason: 7 }, "a person did not approve it", undefined],
    [
      { approved: false, approver: "carol", reason: "not today" },
      "a person did not approve it (carol): not today",
      "carol",
    ],
  ])("a declined answer %j stands as a deny by approval", async (answer, reason, approver) => {
    tracing.reset();
    const chain = guard.forUser(alice);
    const decision = await chain.authorize({ ...readNotes, toolCallId: "call-1" });
    tracing.reset();
    const standing = chain.recordApproval(decision, answer as never);
    expect(standing.allowed).toBe(false);
    expect(standing.deniedBy).toBe("approval");
    expect(standing.reason).toBe(reason);
    const span = onlySpan(tracing.spans(), SpanNames.approval);
    expect(span.attributes[SpanAttributes.approval]).toBe("declined");
    expect(span.attributes[SpanAttributes.reason]).toBe(reason);
    expect(span.attributes[SpanAttributes.toolCallId]).toBe("call-1");
    if (approver === undefined) expect(span.attributes).not.toHaveProperty([SpanAttributes.approver]);
    else expect(span.attributes[SpanAttributes.approver]).toBe(approver);
  });
});

describe("decideToolCall without a chain or with a failing mapper", () => {
  test("no chain: the refusal and its span name the call, or '?' when it cannot be read", async () => {
    const tracing = memoryTracing();
    const outcome = denial(
      await decideToolCall(undefined, { ...readNotes, toolCallId: "c-9" }, { tracer: tracing.tracer }),
    );
    expect(outcome.error?.code).toBe("no_delegation");
    expect(outcome.reason).toMatch(/^tool filesystem\/read_file has no delegation chain/);
    const span = onlySpan(tracing.spans(), SpanNames.authorize);
    expect(span.attributes[SpanAttributes.server]).toBe("filesystem");
    expect(span.attributes[SpanAttributes.toolName]).toBe("read_file");
    expect(span.attributes[SpanAttributes.toolCallId]).toBe("c-9");
    tracing.reset();
    const unreadable = denial(await decideToolCall(undefined, null as never, { tracer: tracing.tracer }));
    expect(unreadable.error?.code).toBe("no_delegation");
    expect(unreadable.reason).toMatch(/^tool \?\/\? has no delegation chain/);
    expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes[SpanAttributes.toolName]).toBe("?");
    const forged = denial(await decideToolCall(null as never, readNotes));
    expect(forged.error?.code).toBe("no_delegation");
  });

  test.each([
    [new TypeError("boom"), "authorization failed: boom"],
    ["bad mapper", "authorization failed: bad mapper"],
  ])("a mapper throwing %j is a refusal that keeps the cause", async (failure, reason) => {
    const pdp = fakePdp();
    const guard = createGuard({
      client: pdp.client,
      mapToolCall: () => {
        throw failure;
      },
    });
    const outcome = denial(await decideToolCall(guard.forUser(alice), readNotes));
    expect(outcome.error?.code).toBe("authorization_failed");
    expect(outcome.reason).toBe(reason);
    expect(outcome.error?.cause).toBe(failure);
    expect(pdp.requests).toEqual([]);
  });
});

describe("callableTools on the real PDP", () => {
  test("its span says how many tools are callable", async () => {
    const tracing = memoryTracing();
    const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
    const chain = await guard.forUser(alice).delegate(planner);
    const tools = [
      { server: "filesystem", tool: "read_file" },
      { server: "filesystem", tool: "write_file" },
    ];
    expect(await chain.callableTools(tools)).toEqual([tools[0]]);
    const span = onlySpan(tracing.spans(), SpanNames.listTools);
    expect(span.attributes[SpanAttributes.toolsOffered]).toBe(2);
    expect(span.attributes[SpanAttributes.toolsCallable]).toBe(1);
  });
});
