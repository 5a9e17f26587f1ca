// Escalation attempts against the core, each judged by the real shared PDP: what was refused, with which code, whether
// anything reached the PDP or ran, and the span that explains it.
import { AsyncResource } from "node:async_hooks";
import { EventEmitter, EventEmitterAsyncResource } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { describe, expect, test } from "vitest";
import {
  currentDelegation,
  Delegation,
  DelegationError,
  type HopguardError,
  InvalidInputError,
  NoDelegationError,
  resolveDelegation,
  runAs,
  SpanAttributes,
  SpanNames,
  type ToolCall,
  type ToolCallOutcome,
} from "../../src/index.ts";
import { scopeAdmitsTool } from "../../src/scope.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { onlySpan } from "../support/tracing.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "../support/users.ts";
import { recordedGuard, recordedTool, refusalOf } from "./support/attack.ts";

const shared = sharedPdpClient();

const readNotes: ToolCall = {
  server: "filesystem",
  tool: "read_file",
  arguments: { path: "/workspace/alice/notes.md" },
};
const writeReport: ToolCall = {
  server: "filesystem",
  tool: "write_file",
  arguments: { path: "/workspace/alice/report.md", content: "done" },
};
const listDirectories: ToolCall = { server: "filesystem", tool: "list_allowed_directories", arguments: {} };

const allow = "EFFECT_ALLOW";
const deny = "EFFECT_DENY";

function expectDelegationError(error: unknown, code: string): DelegationError {
  expect(DelegationError.isInstance(error), `expected a DelegationError, got ${String(error)}`).toBe(true);
  expect((error as DelegationError).code).toBe(code);
  return error as DelegationError;
}

function expectInvalidInput(error: unknown, path: string): InvalidInputError {
  expect(InvalidInputError.isInstance(error), `expected an InvalidInputError, got ${String(error)}`).toBe(true);
  expect((error as InvalidInputError).path).toBe(path);
  return error as InvalidInputError;
}

function onlyDelegateSpan(tracing: { spans: () => ReadableSpan[] }): ReadableSpan["attributes"] {
  return onlySpan(tracing.spans(), SpanNames.delegate).attributes;
}

function deniedDecision(outcome: ToolCallOutcome) {
  expect(outcome.type).toBe("denied");
  if (outcome.type !== "denied" || outcome.decision === undefined) throw new Error("expected a PDP or scope decision");
  return outcome.decision;
}

function refusedWithError(outcome: ToolCallOutcome): HopguardError {
  expect(outcome.type).toBe("denied");
  if (outcome.type !== "denied" || outcome.error === undefined) throw new Error("expected a refusal with an error");
  return outcome.error;
}

describe("a hop asks for more than it holds", () => {
  test("attack: a sub-agent calls outside the narrower scope its parent gave it", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const parent = await guard.forUser(alice).delegate(planner);
    const child = await parent.delegate({ ...researcher, scope: { tools: ["filesystem/read_*"] } });
    // The parent may list directories itself: only the child's narrower scope stands in the way.
    expect((await parent.authorize(listDirectories)).allowed).toBe(true);
    forget();

    const tool = recordedTool();
    const decision = deniedDecision(await tool.call(child, listDirectories));

    expect(decision).toMatchObject({ allowed: false, deniedBy: "scope", hops: [] });
    expect(decision.reason).toContain('outside agent "researcher"\'s delegated tools [filesystem/read_*]');
    expect(tool.ran).toEqual([]);
    expect(pdp.checks).toHaveLength(0);
    expect(span()).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "scope",
      [SpanAttributes.chain]: ["alice", "planner", "researcher"],
      [SpanAttributes.hopEffects]: [],
    });
  });

  test("attack: an intern's writer agent tries write_file and is denied by the user hop", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const forIvan = await guard.forUser(ivanTheIntern).delegate(scribe);
    const forAlice = await guard.forUser(alice).delegate(scribe);
    forget();
    const write = { ...writeReport, arguments: { path: "/workspace/ivan/a.md", content: "x" } };

    const tool = recordedTool();
    const decision = deniedDecision(await tool.call(forIvan, write));

    expect(decision.deniedBy).toBe("ivan");
    expect(decision.hops.map((hop) => [hop.principalId, hop.effect])).toEqual([
      ["ivan", deny],
      ["scribe", deny],
    ]);
    expect(decision.reason).toContain('denied by user "ivan" (hop 0 of ivan → scribe)');
    expect(tool.ran).toEqual([]);
    expect(pdp.checks.map((check) => check.principal.id)).toEqual(["ivan", "scribe"]);
    expect(span()).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "ivan",
      [SpanAttributes.chain]: ["ivan", "scribe"],
      [SpanAttributes.hopEffects]: [deny, deny],
    });
    // The same agent writing for an engineer who is not an intern may: the user hop made the difference.
    expect((await forAlice.authorize(writeReport)).allowed).toBe(true);
  });

  test("attack: a middle hop's policy denies, and the decision names the middle hop", async () => {
    const { guard, span, forget } = recordedGuard(shared);
    const viaPlanner = await guard.forUser(alice).delegate(planner);
    const toResearcher = await viaPlanner.delegate(researcher);
    const toScribe = await viaPlanner.delegate(scribe);
    forget();

    const researcherWrite = await toResearcher.authorize(writeReport);
    expect(researcherWrite.deniedBy).toBe("planner");
    expect(researcherWrite.hops.map((hop) => hop.effect)).toEqual([allow, deny, deny]);
    expect(researcherWrite.reason).toContain('denied by agent "planner" (hop 1 of alice → planner → researcher)');
    expect(span()).toMatchObject({
      [SpanAttributes.deniedBy]: "planner",
      [SpanAttributes.chain]: ["alice", "planner", "researcher"],
    });
    forget();

    // The writer at the end would be allowed; only the planner between it and alice refuses.
    const tool = recordedTool();
    const scribeWrite = deniedDecision(await tool.call(toScribe, writeReport));
    expect(scribeWrite.deniedBy).toBe("planner");
    expect(scribeWrite.hops.map((hop) => hop.effect)).toEqual([allow, deny, allow]);
    expect(tool.ran).toEqual([]);
    expect(span()).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "planner",
      [SpanAttributes.hopEffects]: [allow, deny, allow],
    });
  });
});

describe("forged, truncated, re-ordered and extended chains", () => {
  const forgeries: Record<string, unknown> = {
    chain: ["root"],
    onBehalfOf: { id: "admin", roles: ["admin"], attr: { department: "engineering" } },
    depth: 0,
    kind: "user",
    scope: { tools: ["*/*"], maxDepth: 99 },
  };

  test("attack: a user whose attributes set the reserved chain attributes is refused before the PDP", async () => {
    const { guard, pdp, tracing } = recordedGuard(shared);
    for (const [name, forged] of Object.entries(forgeries)) {
      const error = await refusalOf(() => guard.forUser({ ...alice, attr: { ...alice.attr, [name]: forged } }));
      expectInvalidInput(error, `user.attr.${name}`);
      expect((error as InvalidInputError).message).toContain("reserved");
    }
    // Inherited keys are not the caller's attributes: they are dropped, and the real chain attributes are sent.
    const inherits = Object.assign(Object.create({ chain: ["mallory"], depth: 7 }), alice.attr);
    await guard.forUser({ ...alice, attr: inherits }).authorize(readNotes);
    expect(pdp.checks).toHaveLength(1);
    expect(pdp.checks[0]?.principal.attr).toMatchObject({ chain: ["alice"], depth: 0, kind: "user" });
    expect(tracing.spans().map((span) => span.name)).toEqual([SpanNames.authorize]);
  });

  test("attack: an agent whose attributes set the reserved chain attributes is refused at delegation", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    for (const [name, forged] of Object.entries(forgeries)) {
      forget();
      const error = await refusalOf(root.delegate({ ...scribe, attr: { [name]: forged } }));
      expectInvalidInput(error, `agent.attr.${name}`);
      expect(pdp.checks).toHaveLength(0);
      expect(tracing.spans()).toHaveLength(1);
      expect(tracing.spans()[0]?.attributes).toMatchObject({
        [SpanAttributes.decision]: "error",
        [SpanAttributes.errorType]: "invalid_input",
        [SpanAttributes.delegateTo]: "scribe",
        [SpanAttributes.chain]: ["alice"],
      });
    }
  });

  test("attack: an object that looks like a Delegation is ignored wherever chains are resolved", async () => {
    const { guard, tracing, span, forget } = recordedGuard(shared);
    const real = await guard.forUser(alice).delegate(planner);
    let forgedAsked = 0;
    const forged = {
      chain: ["alice", "planner"],
      user: { id: "alice", roles: ["user"], attr: {} },
      scope: { tools: undefined, maxDepth: 5, expiresAt: undefined },
      authorize: async () => {
        forgedAsked++;
        return { allowed: true, hops: [], outputs: [], chain: ["alice", "planner"], reason: "forged" };
      },
      isDescendantOf: () => true,
    };
    // Even with Delegation's prototype it lacks the private brand only a guard can give.
    const disguised = Object.setPrototypeOf({ ...forged }, Delegation.prototype);
    expect(Delegation.isDelegation(forged)).toBe(false);
    expect(Delegation.isDelegation(disguised)).toBe(false);
    expect(resolveDelegation(forged, disguised)).toBeUndefined();
    expect(resolveDelegation(real, forged)).toBe(real);
    expect(resolveDelegation(forged, real, disguised)).toBe(real);
    expect(runAs(real, () => resolveDelegation(forged, disguised))).toBe(real);
    forget();

    const tool = recordedTool();
    const outcome = await tool.call(resolveDelegation(forged, disguised), writeReport, { tracer: tracing.tracer });
    expect(NoDelegationError.isInstance(refusedWithError(outcome))).toBe(true);
    expect(forgedAsked).toBe(0);
    expect(tool.ran).toEqual([]);
    expect(span()).toMatchObject({
      [SpanAttributes.decision]: "error",
      [SpanAttributes.errorType]: "no_delegation",
      [SpanAttributes.toolName]: "write_file",
    });
  });

  test("attack: a look-alike handed straight to decideToolCall is refused and never asked", async () => {
    // decideToolCall is public ("for adapters, ours and yours"): an adapter that hands it a framework's context value
    // without resolveDelegation must not turn a forged { authorize: () => allow } into an allowed call.
    const { tracing, span } = recordedGuard(shared);
    let forgedAsked = 0;
    const forged = {
      chain: ["alice"],
      authorize: async () => {
        forgedAsked++;
        return { allowed: true, hops: [], outputs: [], chain: ["alice"], deniedBy: undefined, reason: "forged" };
      },
    } as unknown as Delegation;

    const tool = recordedTool();
    const outcome = await tool.call(forged, writeReport, { tracer: tracing.tracer });

    // Refused as a call with no chain, exactly as if resolveDelegation had been asked first.
    expect(NoDelegationError.isInstance(refusedWithError(outcome))).toBe(true);
    expect(tool.ran).toEqual([]);
    expect(forgedAsked).toBe(0);
    expect(span()).toMatchObject({
      [SpanAttributes.decision]: "error",
      [SpanAttributes.errorType]: "no_delegation",
      [SpanAttributes.toolName]: "write_file",
    });
  });

  test("attack: editing a chain, its scope or its actors after the PDP approved it throws, and decides nothing", async () => {
    const { guard, pdp, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate({ ...researcher, scope: { tools: ["filesystem/read_*"] } });
    forget();
    const before = await chain.authorize(readNotes);
    const principalsBefore = pdp.checks.map((check) => check.principal);
    const loose = chain as unknown as Record<string, unknown>;

    const edits: Array<() => unknown> = [
      () => (chain.chain as string[]).push("mallory"),
      () => {
        (chain.chain as string[])[0] = "admin";
      },
      () => {
        loose.chain = ["admin"];
      },
      () => {
        loose.scope = { tools: undefined, maxDepth: 99, expiresAt: undefined };
      },
      () => (chain.scope.tools as string[]).push("*/*"),
      () => {
        (chain.scope as { maxDepth: number }).maxDepth = 99;
      },
      () => {
        (chain.user.attr as Record<string, unknown>).department = "security";
      },
      () => (chain.agent as unknown as { roles: string[] }).roles.push("writer"),
      () => {
        loose.depth = 0;
      },
      () => delete loose.agent,
      () => Object.defineProperty(chain, "user", { value: { id: "admin", roles: ["admin"], attr: {} } }),
    ];
    for (const edit of edits) expect(edit).toThrow(TypeError);

    forget();
    const after = await chain.authorize(readNotes);
    expect(after.allowed).toBe(before.allowed);
    expect(after.hops.map((hop) => [hop.principalId, hop.effect])).toEqual(
      before.hops.map((hop) => [hop.principalId, hop.effect]),
    );
    expect(pdp.checks.map((check) => check.principal)).toEqual(principalsBefore);
    expect(chain.chain).toEqual(["alice", "researcher"]);
    expect(chain.scope.tools).toEqual(["filesystem/read_*"]);
    expect((await chain.authorize(writeReport)).deniedBy).toBe("scope");
  });

  test("attack: a sub-agent presents its parent's truncated chain, or re-orders or extends the candidates", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const parent = await root.delegate(planner);
    const child = await parent.delegate({ ...researcher, scope: { tools: ["filesystem/read_*"] } });
    forget();

    const tool = recordedTool();
    const chosen = await runAs(child, async () => [
      // Truncated: the parent's (or the user's) chain passed explicitly from inside the child's run.
      resolveDelegation(parent),
      resolveDelegation(root),
      resolveDelegation(root, parent),
    ]);
    // Re-ordered: wherever the child sits among the candidates, the deepest chain decides.
    chosen.push(
      resolveDelegation(child, parent),
      resolveDelegation(parent, child),
      resolveDelegation(root, child, parent),
    );
    // Extended: a chain below the one in effect can only be narrower, and it is the one that decides.
    chosen.push(
      runAs(parent, () => resolveDelegation(child)),
      runAs(root, () => resolveDelegation(parent, child)),
    );
    for (const delegation of chosen) expect(delegation).toBe(child);

    const outcomes = await Promise.all(chosen.map((delegation) => tool.call(delegation, listDirectories)));
    for (const outcome of outcomes) {
      expect(deniedDecision(outcome)).toMatchObject({ deniedBy: "scope", chain: ["alice", "planner", "researcher"] });
    }
    expect(tool.ran).toEqual([]);
    expect(pdp.checks).toHaveLength(0);
    const spans = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    expect(spans).toHaveLength(chosen.length);
    for (const span of spans) {
      expect(span.attributes).toMatchObject({
        [SpanAttributes.deniedBy]: "scope",
        [SpanAttributes.chain]: ["alice", "planner", "researcher"],
      });
    }
  });

  test("attack: a chain made by guard A, used with tools guarded for guard B, is decided by A's PDP", async () => {
    const a = recordedGuard(shared);
    const b = recordedGuard(shared, {
      // Guard B would deny everything: it checks every call as a kind no policy covers.
      mapToolCall: (call) => ({ resource: { kind: "mcp::nothing", id: call.tool, attr: {} }, action: call.tool }),
    });
    const fromA = await a.guard.forUser(alice).delegate(planner);
    const fromB = await b.guard.forUser(alice).delegate(planner);
    a.forget();
    b.forget();

    // A tool gate takes a chain, not a guard: whichever guard made the chain decides, with its own PDP client,
    // timeout, mapping and tracer. The gate's tracer only records calls refused for having no chain at all.
    const toolOfB = recordedTool();
    const outcome = await toolOfB.call(fromA, readNotes, { tracer: b.tracing.tracer });
    expect(outcome.type).toBe("allowed");
    expect(toolOfB.ran).toEqual([readNotes.arguments]);
    expect(a.pdp.checks.map((check) => [check.principal.id, check.resources[0]?.resource.kind])).toEqual([
      ["alice", "mcp::filesystem"],
      ["planner", "mcp::filesystem"],
    ]);
    expect(b.pdp.checks).toHaveLength(0);
    expect(b.tracing.spans()).toHaveLength(0);
    expect(a.span()).toMatchObject({
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.chain]: ["alice", "planner"],
    });

    // B's own chain is decided by B: the same call is denied there, so the chain, not the tool, carries the PDP.
    const refused = deniedDecision(await toolOfB.call(fromB, readNotes, { tracer: b.tracing.tracer }));
    expect(refused.deniedBy).toBe("alice");
    expect(toolOfB.ran).toHaveLength(1);
    expect(b.pdp.checks.map((check) => check.resources[0]?.resource.kind)).toEqual(["mcp::nothing", "mcp::nothing"]);
    expect(b.span()).toMatchObject({ [SpanAttributes.decision]: "deny", [SpanAttributes.deniedBy]: "alice" });
    // Mixing chains of both guards: neither descends from the other, so the first one found keeps its say.
    expect(resolveDelegation(fromB, fromA)).toBe(fromB);
    expect(runAs(fromA, () => resolveDelegation(fromB))).toBe(fromB);
  });
});

describe("self-delegation and cycles under another spelling", () => {
  test("attack: an agent delegates to itself, or to a case variant of a hop already in the chain", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const fromPlanner = await guard.forUser(alice).delegate(planner);
    for (const id of ["planner", "Planner", "PLANNER", "Alice", "ALICE"]) {
      forget();
      const error = expectDelegationError(
        await refusalOf(fromPlanner.delegate({ id, roles: ["agent", "researcher"] })),
        "delegation_cycle",
      );
      expect(error.chain).toEqual(["alice", "planner"]);
      expect(error.agentId).toBe(id);
      expect(pdp.checks).toHaveLength(0);
      expect(onlyDelegateSpan(tracing)).toMatchObject({
        [SpanAttributes.decision]: "deny",
        [SpanAttributes.deniedBy]: "delegation_cycle",
        [SpanAttributes.delegateTo]: id,
        [SpanAttributes.chain]: ["alice", "planner"],
      });
    }
  });

  test("attack: ids padded with white space or hiding zero-width and bidi-override characters are refused", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const fromPlanner = await guard.forUser(alice).delegate(planner);
    const lookAlikes = [
      "planner ",
      " planner",
      "planner\u00A0",
      "plan\u200Bner",
      "planner\u200D",
      "\uFEFFplanner",
      "plan\u00ADner",
      "\u202Erennalp",
      "plan\u202Ener",
      "planner\u200F",
      "\u2066planner\u2069",
      "plan\u0000ner",
    ];
    for (const id of lookAlikes) {
      forget();
      expectInvalidInput(await refusalOf(fromPlanner.delegate({ id, roles: ["agent"] })), "agent.id");
      expect(pdp.checks).toHaveLength(0);
      expect(onlyDelegateSpan(tracing)).toMatchObject({
        [SpanAttributes.decision]: "error",
        [SpanAttributes.errorType]: "invalid_input",
      });
      expectInvalidInput(await refusalOf(() => guard.forUser({ ...alice, id })), "user.id");
    }
    expectInvalidInput(
      await refusalOf(fromPlanner.delegate({ id: "helper", roles: ["agent", "plan\u200Bner"] })),
      "agent.roles[1]",
    );
    expect(pdp.checks).toHaveLength(0);
  });

  test("attack: the decomposed (NFD) spelling of a hop's id is the same principal, so a cycle", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const composed = "caf\u00E9";
    const decomposed = "cafe\u0301";
    expect(decomposed).not.toBe(composed);
    const withCafe = await guard.forUser(alice).delegate({ id: decomposed, roles: ["agent", "planner"] });
    // Stored, sent and traced as NFC, whichever way the caller spelled it.
    expect(withCafe.chain).toEqual(["alice", composed]);
    expect(pdp.checks.at(-1)?.resources[0]?.resource.id).toBe(composed);
    forget();

    for (const id of [composed, decomposed, "CAFE\u0301"]) {
      expectDelegationError(await refusalOf(withCafe.delegate({ id, roles: ["agent"] })), "delegation_cycle");
    }
    expect(pdp.checks).toHaveLength(0);
    expect(tracing.spans().map((span) => span.attributes[SpanAttributes.deniedBy])).toEqual([
      "delegation_cycle",
      "delegation_cycle",
      "delegation_cycle",
    ]);
  });

  test("attack: full-width and ligature compatibility forms fold (NFKC) onto a hop already in the chain", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const fromPlanner = await guard.forUser(alice).delegate(planner);
    const withFiler = await guard.forUser(alice).delegate({ id: "filer", roles: ["agent", "planner"] });
    forget();

    for (const [chain, id] of [
      [fromPlanner, "\uFF50\uFF4C\uFF41\uFF4E\uFF4E\uFF45\uFF52"],
      [fromPlanner, "\uFF30\uFF2C\uFF21\uFF2E\uFF2E\uFF25\uFF32"],
      [fromPlanner, "\uFF41\uFF4C\uFF49\uFF43\uFF45"],
      [withFiler, "\uFB01ler"],
    ] as const) {
      expectDelegationError(await refusalOf(chain.delegate({ id, roles: ["agent"] })), "delegation_cycle");
    }
    expect(pdp.checks).toHaveLength(0);
    expect(tracing.spans().every((span) => span.attributes[SpanAttributes.deniedBy] === "delegation_cycle")).toBe(true);

    // A homoglyph from another script is not folded: it is a different principal, judged on the roles it claims.
    // Claiming to be a planner, it is refused by the planner's policy (no planner hands work to another planner).
    const cyrillic = "\u0440lanner";
    const error = expectDelegationError(
      await refusalOf(fromPlanner.delegate({ id: cyrillic, roles: ["agent", "planner"] })),
      "delegation_denied",
    );
    expect(error.decision?.deniedBy).toBe("planner");
    expect(pdp.checks.map((check) => check.principal.id)).toEqual(["alice", "planner"]);
  });
});

describe("depth", () => {
  test("attack: a chain grows past the guard's maxDepth", async () => {
    const deep = recordedGuard(shared, { maxDepth: 2 });
    // Exactly at the limit is fine: alice (0) → planner (1) → researcher (2).
    const atLimit = await (await deep.guard.forUser(alice).delegate(planner)).delegate(researcher);
    expect(atLimit.depth).toBe(2);
    expect((await atLimit.authorize(readNotes)).allowed).toBe(true);

    // One past: the planner's policy would allow this delegation, only the depth limit refuses it.
    const shallow = recordedGuard(shared, { maxDepth: 1 });
    const first = await shallow.guard.forUser(alice).delegate(planner);
    shallow.forget();
    const error = expectDelegationError(await refusalOf(first.delegate(researcher)), "depth_exceeded");
    expect(error.message).toContain("would reach depth 2");
    expect(shallow.pdp.checks).toHaveLength(0);
    expect(shallow.span(SpanNames.delegate)).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "depth_exceeded",
      [SpanAttributes.chain]: ["alice", "planner"],
    });

    const flat = recordedGuard(shared, { maxDepth: 0 });
    expectDelegationError(await refusalOf(flat.guard.forUser(alice).delegate(planner)), "depth_exceeded");
    expect(flat.pdp.checks).toHaveLength(0);
  });

  test("attack: a chain grows past a maxDepth set in a scope, or asks for a deeper one", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const userLimited = guard.forUser(alice, { scope: { maxDepth: 2 } });
    const atLimit = await (await userLimited.delegate(planner)).delegate(researcher);
    expect(atLimit.scope.maxDepth).toBe(2);

    const limitedPlanner = await guard.forUser(alice).delegate({ ...planner, scope: { maxDepth: 1 } });
    forget();
    expectDelegationError(await refusalOf(limitedPlanner.delegate(researcher)), "depth_exceeded");
    expect(pdp.checks).toHaveLength(0);
    expect(span(SpanNames.delegate)).toMatchObject({ [SpanAttributes.deniedBy]: "depth_exceeded" });

    // A limit that leaves no room for the agent itself, or one above the parent's.
    expectDelegationError(
      await refusalOf(guard.forUser(alice).delegate({ ...planner, scope: { maxDepth: 0 } })),
      "depth_exceeded",
    );
    expectDelegationError(
      await refusalOf(userLimited.delegate({ ...planner, scope: { maxDepth: 3 } })),
      "scope_widened",
    );
    // At the root, a scope cannot raise the guard's own limit.
    expect(guard.forUser(alice, { scope: { maxDepth: 99 } }).scope.maxDepth).toBe(5);
    for (const maxDepth of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expectInvalidInput(
        await refusalOf(guard.forUser(alice).delegate({ ...planner, scope: { maxDepth } })),
        "agent.scope.maxDepth",
      );
    }
    expect(pdp.checks).toHaveLength(0);
  });
});

describe("expiry", () => {
  test("attack: a delegation used at the very millisecond it expires", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const expiring = guard.forUser(alice, { scope: { expiresAt: Date.now() } });
    const tool = recordedTool();
    const decision = deniedDecision(await tool.call(expiring, readNotes));
    expect(decision).toMatchObject({ deniedBy: "scope", hops: [] });
    expect(decision.reason).toContain("expired");
    expect(tool.ran).toEqual([]);
    expect(pdp.checks).toHaveLength(0);
    expect(span()).toMatchObject({ [SpanAttributes.decision]: "deny", [SpanAttributes.deniedBy]: "scope" });

    forget();
    const root = guard.forUser(alice);
    for (const expiresAt of [Date.now(), new Date(), new Date().toISOString()]) {
      expectDelegationError(await refusalOf(root.delegate({ ...planner, scope: { expiresAt } })), "delegation_expired");
    }
    expect(pdp.checks).toHaveLength(0);
  });

  test("attack: a delegation valid for one more millisecond is used after it", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const brief = guard.forUser(alice, { scope: { expiresAt: Date.now() + 1 } });
    await sleep(5);
    forget();

    const tool = recordedTool();
    expect(deniedDecision(await tool.call(brief, readNotes)).deniedBy).toBe("scope");
    expect(span()).toMatchObject({ [SpanAttributes.deniedBy]: "scope" });
    expectDelegationError(await refusalOf(brief.delegate(planner)), "delegation_expired");
    expect(tool.ran).toEqual([]);
    expect(pdp.checks).toHaveLength(0);
  });

  test("attack: a child asks to outlive its parent", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const until = Date.now() + 60_000;
    const parent = await guard.forUser(alice).delegate({ ...planner, scope: { expiresAt: until } });
    forget();
    for (const expiresAt of [until + 1, new Date(until + 1000), new Date(until + 1).toISOString()]) {
      const error = expectDelegationError(
        await refusalOf(parent.delegate({ ...researcher, scope: { expiresAt } })),
        "scope_widened",
      );
      expect(error.message).toContain("expiresAt");
    }
    expect(pdp.checks).toHaveLength(0);
    expect(tracing.spans().map((span) => span.attributes[SpanAttributes.deniedBy])).toEqual([
      "scope_widened",
      "scope_widened",
      "scope_widened",
    ]);

    // Asking for nothing inherits the parent's expiry; asking for exactly it is fine.
    expect((await parent.delegate(researcher)).scope.expiresAt).toBe(until);
    expect((await parent.delegate({ ...researcher, scope: { expiresAt: until } })).scope.expiresAt).toBe(until);
  });

  test("attack: expiries a Date cannot hold are refused as invalid input, never a RangeError mid-decision", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const outOfRange: unknown[] = [
      8.64e15 + 1,
      -8.64e15 - 1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      "not a date",
      "+275760-09-13T00:00:00.001Z",
      new Date(Number.NaN),
    ];
    for (const expiresAt of outOfRange) {
      const scope = { expiresAt } as { expiresAt: number };
      expectInvalidInput(await refusalOf(() => guard.forUser(alice, { scope })), "scope.expiresAt");
      forget();
      expectInvalidInput(await refusalOf(root.delegate({ ...planner, scope })), "agent.scope.expiresAt");
      expect(pdp.checks).toHaveLength(0);
      expect(onlyDelegateSpan(tracing)).toMatchObject({ [SpanAttributes.errorType]: "invalid_input" });
    }
    // The very edges a Date can hold are accepted, and reach the PDP as ISO-8601 strings.
    forget();
    const latest = guard.forUser(alice, { scope: { expiresAt: 8.64e15 } });
    expect((await latest.authorize(readNotes)).allowed).toBe(true);
    expect(pdp.checks[0]?.principal.attr?.scope).toMatchObject({ expiresAt: "+275760-09-13T00:00:00.000Z" });
    const earliest = guard.forUser(alice, { scope: { expiresAt: -8.64e15 } });
    expect((await earliest.authorize(readNotes)).deniedBy).toBe("scope");
  });
});

describe("scope widening by glob tricks", () => {
  const probes = ["read_file", "read_", "read_/x", "read_a/x", "read_*", "write_file", "READ_FILE", "xread_file", "*"];

  test.each([
    ["filesystem/*"],
    ["*/read_*"],
    ["filesystem*/read_*"],
    ["filesystem/READ_*"],
    ["filesystem/*read_*"],
    ["filesystem/read*"],
    ["*/*"],
  ])("attack: under filesystem/read_*, a child asks for %s and is refused as a widening", async (pattern) => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const parent = await guard.forUser(alice).delegate({ ...planner, scope: { tools: ["filesystem/read_*"] } });
    forget();
    const error = expectDelegationError(
      await refusalOf(parent.delegate({ ...researcher, scope: { tools: [pattern] } })),
      "scope_widened",
    );
    expect(error.message).toContain(`${pattern} not within [filesystem/read_*]`);
    expect(pdp.checks).toHaveLength(0);
    expect(span(SpanNames.delegate)).toMatchObject({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.deniedBy]: "scope_widened",
      [SpanAttributes.delegateTo]: "researcher",
    });
  });

  test.each([["filesystem/read_**"], ["filesystem/read_*/x"], ["filesystem/read_*_*"]])(
    "attack: under filesystem/read_*, a child asks for %s: accepted only because it admits nothing more",
    async (pattern) => {
      const { guard, pdp, span, forget } = recordedGuard(shared);
      const parent = await guard.forUser(alice).delegate({ ...planner, scope: { tools: ["filesystem/read_*"] } });
      const child = await parent.delegate({ ...researcher, scope: { tools: [pattern] } });
      expect(child.scope.tools).toEqual([pattern]);
      for (const tool of probes) {
        const childMay = scopeAdmits(child, "filesystem", tool);
        if (childMay) expect(scopeAdmits(parent, "filesystem", tool), tool).toBe(true);
      }
      forget();
      const tool = recordedTool();
      expect(deniedDecision(await tool.call(child, writeReport)).deniedBy).toBe("scope");
      expect(tool.ran).toEqual([]);
      expect(pdp.checks).toHaveLength(0);
      expect(span()).toMatchObject({ [SpanAttributes.deniedBy]: "scope" });
    },
  );

  test("attack: tool names containing * or / are matched literally under a filesystem/read_* scope", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const reader = await guard.forUser(alice).delegate({ ...researcher, scope: { tools: ["filesystem/read_*"] } });
    forget();
    const tool = recordedTool();
    const call = (server: string, name: string) => tool.call(reader, { ...readNotes, server, tool: name });

    // A "*" in a call's name is a character, not a wildcard: "*" is not "read_…", nor is "*" a server.
    for (const [server, name] of [
      ["filesystem", "*"],
      ["filesystem", "READ_FILE"],
      ["*", "read_file"],
    ] as const) {
      expect(deniedDecision(await call(server, name)).deniedBy).toBe("scope");
    }
    expect(pdp.checks).toHaveLength(0);

    // Names the scope admits still face the PDP, which matches them literally too: no policy allows them.
    for (const name of ["read_*", "read_file/../write_file", "read_file/write_file"]) {
      forget();
      const decision = deniedDecision(await call("filesystem", name));
      expect(decision.deniedBy).toBe("alice");
      expect(decision.hops.map((hop) => hop.effect)).toEqual([deny, deny]);
      expect(pdp.checks.map((check) => check.resources[0]?.actions)).toEqual([[name], [name]]);
      expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes).toMatchObject({
        [SpanAttributes.toolName]: name,
        [SpanAttributes.deniedBy]: "alice",
      });
    }
    expect(tool.ran).toEqual([]);
    expect((await call("filesystem", "read_file")).type).toBe("allowed");
    expect(tool.ran).toHaveLength(1);
  });

  test("attack: a server name with / cannot move the server/tool split", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    for (const server of ["filesystem/read_file", "file/system", "/filesystem"]) {
      forget();
      const error = refusedWithError(await tool.call(root, { ...readNotes, server }));
      expectInvalidInput(error, "call.server");
      expect(pdp.checks).toHaveLength(0);
      expect(span()).toMatchObject({ [SpanAttributes.errorType]: "invalid_input" });
    }

    // In a scope, the first "/" splits: "file/system/read_*" is server "file", tools "system/read_*". A call to
    // server "file" is then checked as kind mcp::file, which no policy covers: denied, not read as mcp::filesystem.
    const odd = await root.delegate({ ...researcher, scope: { tools: ["file/system/read_*"] } });
    expect(deniedDecision(await tool.call(odd, readNotes)).deniedBy).toBe("scope");
    forget();
    const decision = deniedDecision(await tool.call(odd, { ...readNotes, server: "file", tool: "system/read_file" }));
    expect(decision.deniedBy).toBe("alice");
    // No policy matched: Cerbos reports "NO_MATCH" (hopguard's docs say "" for that case).
    for (const hop of decision.hops) expect(["", "NO_MATCH"]).toContain(hop.policy);
    expect(pdp.checks[0]?.resources[0]?.resource.kind).toBe("mcp::file");
    expect(tool.ran).toEqual([]);
  });
});

describe("arguments built to confuse or overwhelm", () => {
  test("attack: a path given as an array, an object or a number is denied by the PDP, not coerced", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate(planner);
    const tool = recordedTool();
    const confusions: Array<Record<string, unknown>> = [
      { path: ["/workspace/alice/notes.md"] },
      { path: { startsWith: "/workspace/alice/" } },
      { path: 42 },
      { path: null },
      { path: true },
    ];
    for (const args of confusions) {
      forget();
      const decision = deniedDecision(await tool.call(chain, { ...readNotes, arguments: args }));
      expect(decision.deniedBy).toBe("alice");
      expect(decision.hops.map((hop) => hop.effect)).toEqual([deny, deny]);
      expect(pdp.argumentsSeen()).toEqual([args, args]);
      expect(span()).toMatchObject({ [SpanAttributes.decision]: "deny", [SpanAttributes.deniedBy]: "alice" });
    }
    // read_multiple_files expects a list: one string is not a list of paths inside the workspace.
    forget();
    const many = { server: "filesystem", tool: "read_multiple_files", arguments: { paths: "/workspace/alice/a.md" } };
    expect(deniedDecision(await tool.call(chain, many)).deniedBy).toBe("alice");
    expect(tool.ran).toEqual([]);
    expect((await tool.call(chain, readNotes)).type).toBe("allowed");
  });

  test("attack: more than 1 MiB of text in arguments is refused before anything is sent", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    const oneMiB = 1 << 20;
    const oversized: Array<[Record<string, unknown>, string]> = [
      [{ path: "/workspace/alice/a.md", content: "x".repeat(oneMiB) }, "call.arguments.content"],
      [
        Object.fromEntries(Array.from({ length: oneMiB / 16 }, (_, index) => [`k${index}`, "0123456789abcdef"])),
        "call.arguments",
      ],
    ];
    for (const [args, path] of oversized) {
      forget();
      const error = refusedWithError(await tool.call(root, { ...writeReport, arguments: args }));
      expect(InvalidInputError.isInstance(error)).toBe(true);
      expect((error as InvalidInputError).path.startsWith(path)).toBe(true);
      expect(error.message).toContain(`larger than ${oneMiB} characters`);
      expect(pdp.checks).toHaveLength(0);
      expect(span()).toMatchObject({ [SpanAttributes.decision]: "error", [SpanAttributes.errorType]: "invalid_input" });
    }
    expect(tool.ran).toEqual([]);
    // Just under the limit is an ordinary call the PDP decides.
    forget();
    const fits = { path: "/workspace/alice/a.md", content: "x".repeat(oneMiB - 64) };
    expect((await tool.call(root, { ...writeReport, arguments: fits })).type).toBe("allowed");
    expect(pdp.checks).toHaveLength(1);
  });

  test("attack: arguments nested deeper than 64 levels are refused before anything is sent", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    const nested = (levels: number): Record<string, unknown> => {
      let value: Record<string, unknown> = { path: "/workspace/alice/notes.md" };
      for (let level = 1; level < levels; level++) value = { path: "/workspace/alice/notes.md", next: value };
      return value;
    };
    expect((await tool.call(root, { ...readNotes, arguments: nested(64) })).type).toBe("allowed");
    forget();
    for (const args of [nested(65), { path: "/workspace/alice/notes.md", list: deepArray(70) }]) {
      forget();
      const error = refusedWithError(await tool.call(root, { ...readNotes, arguments: args }));
      expect(InvalidInputError.isInstance(error)).toBe(true);
      expect(error.message).toContain("deeper than 64 levels");
      expect(pdp.checks).toHaveLength(0);
      expect(span()).toMatchObject({ [SpanAttributes.errorType]: "invalid_input" });
    }
    expect(tool.ran).toHaveLength(1);
  });

  test("attack: values JSON cannot carry are refused, naming the path, before anything is sent", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    const cyclic: Record<string, unknown> = { path: "/workspace/alice/notes.md" };
    cyclic.self = { again: cyclic };
    const cases: Array<[Partial<ToolCall>, string]> = [
      [{ arguments: { path: "/workspace/alice/notes.md", n: 10n } }, "call.arguments.n"],
      [{ arguments: { path: "/workspace/alice/notes.md", run: () => "rm -rf /" } }, "call.arguments.run"],
      [{ arguments: { path: "/workspace/alice/notes.md", tag: Symbol("admin") } }, "call.arguments.tag"],
      [{ arguments: { path: "/workspace/alice/notes.md", limit: Number.NaN } }, "call.arguments.limit"],
      [{ arguments: { path: "/workspace/alice/notes.md", limit: -Infinity } }, "call.arguments.limit"],
      [{ arguments: { path: "/workspace/alice/notes.md", list: [1, 2, 3n] } }, "call.arguments.list[2]"],
      [{ arguments: { path: "/workspace/alice/notes.md", when: new Date(Number.NaN) } }, "call.arguments.when"],
      [{ arguments: cyclic }, "call.arguments.self.again"],
      [{ annotations: { readOnlyHint: 1n } }, "call.annotations.readOnlyHint"],
      [{ arguments: "path=/etc/passwd" as unknown as Record<string, unknown> }, "call.arguments"],
      [{ arguments: [readNotes.arguments] as unknown as Record<string, unknown> }, "call.arguments"],
      [{ toolCallId: 7 as unknown as string }, "call.toolCallId"],
    ];
    for (const [override, path] of cases) {
      forget();
      const error = refusedWithError(await tool.call(root, { ...readNotes, ...override }));
      expectInvalidInput(error, path);
      expect(pdp.checks).toHaveLength(0);
      expect(span()).toMatchObject({ [SpanAttributes.decision]: "error", [SpanAttributes.errorType]: "invalid_input" });
    }
    expect(tool.ran).toEqual([]);
  });

  test("attack: a toJSON that throws is a refusal, and nothing is sent", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    const boom = new Error("toJSON exploded");
    const hostile = {
      path: {
        toJSON() {
          throw boom;
        },
      },
    };
    forget();
    const error = refusedWithError(await tool.call(root, { ...readNotes, arguments: hostile }));
    expect(error.code).toBe("authorization_failed");
    expect(error.cause).toBe(boom);
    expect(pdp.checks).toHaveLength(0);
    expect(span()).toMatchObject({ [SpanAttributes.decision]: "error" });

    // One that throws only the first time it is read still cannot get a call through.
    let reads = 0;
    const once = {
      toJSON() {
        reads++;
        if (reads === 1) throw boom;
        return { path: "/workspace/alice/notes.md" };
      },
    };
    const outcome = await tool.call(root, { ...readNotes, arguments: once as unknown as Record<string, unknown> });
    expect(refusedWithError(outcome).code).toMatch(/^(authorization_failed|invalid_input)$/);
    expect(tool.ran).toEqual([]);
  });

  test("attack: a Proxy whose traps throw, as the arguments or as the call, is a refusal with nothing sent", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const root = guard.forUser(alice);
    const tool = recordedTool();
    const trap = () => {
      throw new Error("trap sprung");
    };
    const revocable = Proxy.revocable({ path: "/workspace/alice/notes.md" }, {});
    revocable.revoke();
    const hostileArguments: unknown[] = [
      new Proxy({}, { ownKeys: trap }),
      new Proxy({}, { get: trap }),
      new Proxy({ path: "/workspace/alice/notes.md" }, { getOwnPropertyDescriptor: trap }),
      new Proxy({}, { getPrototypeOf: trap }),
      revocable.proxy,
    ];
    const calls: unknown[] = [
      ...hostileArguments.map((args) => ({ ...readNotes, arguments: args })),
      new Proxy(readNotes, { get: trap }),
    ];
    for (const call of calls) {
      forget();
      const error = refusedWithError(await tool.call(root, call as ToolCall));
      expect(error.code).toMatch(/^(authorization_failed|invalid_input)$/);
      expect(pdp.checks).toHaveLength(0);
      const spans = tracing.spans();
      expect(spans).toHaveLength(1);
      expect(spans[0]?.attributes[SpanAttributes.decision]).toBe("error");
    }
    expect(tool.ran).toEqual([]);
  });

  test("attack: a __proto__ key in arguments reaches the PDP as an own key and pollutes nothing", async () => {
    const { guard, pdp, span, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate(planner);
    forget();
    const args = JSON.parse(
      '{"path": "/workspace/alice/notes.md", "__proto__": {"admin": true, "path": "/etc/passwd"}}',
    );
    expect(Object.hasOwn(args, "__proto__")).toBe(true);

    const tool = recordedTool();
    const outcome = await tool.call(chain, { ...readNotes, arguments: args });

    expect(outcome.type).toBe("allowed");
    expect(JSON.stringify(pdp.checks)).toContain('"__proto__":{"admin":true,"path":"/etc/passwd"}');
    for (const seen of pdp.argumentsSeen()) {
      expect(Object.hasOwn(seen as object, "__proto__")).toBe(true);
      expect((seen as { path: string }).path).toBe("/workspace/alice/notes.md");
    }
    if (outcome.type !== "allowed") return;
    expect(Object.hasOwn(outcome.call.arguments, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(outcome.call.arguments)).toBe(Object.prototype);
    const ran = tool.ran[0] as Record<string, unknown>;
    expect(Object.hasOwn(ran, "__proto__")).toBe(true);
    expect(ran.path).toBe("/workspace/alice/notes.md");
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    expect(span()).toMatchObject({ [SpanAttributes.decision]: "allow", [SpanAttributes.chain]: ["alice", "planner"] });
  });
});

describe("replays and races", () => {
  test("attack: retrying a denied call, or changing arguments after an allow, gets no cached answer", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate(planner);
    forget();
    const tool = recordedTool();

    const retries = [];
    for (let attempt = 0; attempt < 3; attempt++) retries.push(deniedDecision(await tool.call(chain, writeReport)));
    for (const decision of retries) expect(decision.deniedBy).toBe("planner");
    expect(pdp.checks).toHaveLength(6);
    expect(new Set(retries.flatMap((decision) => decision.hops.map((hop) => hop.cerbosCallId))).size).toBe(6);

    const args: Record<string, unknown> = { path: "/workspace/alice/notes.md" };
    expect((await tool.call(chain, { ...readNotes, arguments: args })).type).toBe("allowed");
    args.path = "/workspace/bob/notes.md";
    expect(deniedDecision(await tool.call(chain, { ...readNotes, arguments: args })).deniedBy).toBe("alice");
    args.path = "/workspace/alice/notes.md";
    expect((await tool.call(chain, { ...readNotes, arguments: args })).type).toBe("allowed");

    expect(pdp.checks).toHaveLength(12);
    expect(tool.ran).toEqual([{ path: "/workspace/alice/notes.md" }, { path: "/workspace/alice/notes.md" }]);
    expect(tracing.spans().map((span) => span.attributes[SpanAttributes.decision])).toEqual([
      "deny",
      "deny",
      "deny",
      "allow",
      "deny",
      "allow",
    ]);
  });

  test("attack: decisions for different chains started in the same tick do not mix", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const aliceRoot = guard.forUser(alice);
    const viaPlanner = await aliceRoot.delegate(planner);
    const cases = [
      { chain: viaPlanner, call: readNotes, deniedBy: undefined },
      {
        chain: await guard.forUser(bob).delegate(scribe),
        call: { ...writeReport, arguments: { path: "/workspace/bob/a.md", content: "x" } },
        deniedBy: "bob",
      },
      {
        chain: await guard.forUser(ivanTheIntern).delegate(scribe),
        call: { ...writeReport, arguments: { path: "/workspace/ivan/a.md", content: "x" } },
        deniedBy: "ivan",
      },
      { chain: await aliceRoot.delegate(scribe), call: writeReport, deniedBy: undefined },
      { chain: await viaPlanner.delegate(scribe), call: writeReport, deniedBy: "planner" },
      {
        chain: await viaPlanner.delegate({ ...researcher, scope: { tools: ["memory/*"] } }),
        call: readNotes,
        deniedBy: "scope",
      },
    ];
    forget();

    const decisions = await Promise.all(cases.map(({ chain, call }) => chain.authorize(call)));

    const spans = tracing.spans();
    expect(spans).toHaveLength(cases.length);
    cases.forEach(({ chain, deniedBy }, index) => {
      const decision = decisions[index];
      expect(decision?.chain).toEqual(chain.chain);
      expect(decision?.deniedBy).toBe(deniedBy);
      const span = spans.find((each) => each.attributes[SpanAttributes.requestId] === decision?.requestId);
      expect(span?.attributes).toMatchObject({
        [SpanAttributes.chain]: [...chain.chain],
        [SpanAttributes.decision]: deniedBy === undefined ? "allow" : "deny",
      });
      expect(span?.attributes[SpanAttributes.deniedBy]).toBe(deniedBy);
      const checks = pdp.checks.filter((check) => check.requestId === decision?.requestId);
      expect(checks.map((check) => check.principal.id)).toEqual(deniedBy === "scope" ? [] : [...chain.chain]);
      for (const check of checks) {
        expect(check.principal.attr?.onBehalfOf).toMatchObject({ id: chain.chain[0] });
        expect(chain.chain.slice(0, (check.principal.attr?.depth as number) + 1)).toEqual(check.principal.attr?.chain);
      }
    });
    expect(new Set(decisions.map((decision) => decision.requestId)).size).toBe(cases.length);
  });
});

describe("a chain lost across an async boundary", () => {
  test("attack: a timer or microtask scheduled outside runAs runs with no chain, and is refused", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate(planner);
    forget();
    const tool = recordedTool();
    const seen: Record<string, Delegation | undefined> = {};
    const outcomes: Record<string, Promise<ToolCallOutcome>> = {};
    const callFrom = (where: string) => {
      seen[where] = currentDelegation();
      outcomes[where] = tool.call(resolveDelegation(), readNotes, { tracer: tracing.tracer });
    };

    const outsideTimer = new Promise<void>((fired) =>
      setTimeout(() => {
        callFrom("timer scheduled outside");
        fired();
      }, 5),
    );
    queueMicrotask(() => callFrom("microtask queued outside"));
    await guard.runAs(chain, async () => {
      queueMicrotask(() => callFrom("microtask queued inside"));
      await new Promise<void>((fired) =>
        setTimeout(() => {
          callFrom("timer scheduled inside");
          fired();
        }, 1),
      );
      // Still inside runAs when the outside timer fires: what counts is where a callback was scheduled.
      await outsideTimer;
    });

    expect(seen).toEqual({
      "microtask queued outside": undefined,
      "microtask queued inside": chain,
      "timer scheduled inside": chain,
      "timer scheduled outside": undefined,
    });
    for (const where of ["microtask queued outside", "timer scheduled outside"]) {
      const error = refusedWithError(await (outcomes[where] as Promise<ToolCallOutcome>));
      expect(NoDelegationError.isInstance(error), where).toBe(true);
    }
    for (const where of ["microtask queued inside", "timer scheduled inside"]) {
      expect((await (outcomes[where] as Promise<ToolCallOutcome>)).type, where).toBe("allowed");
    }
    expect(tool.ran).toHaveLength(2);
    expect(pdp.checks.map((check) => check.principal.id)).toEqual(["alice", "planner", "alice", "planner"]);
    const spans = tracing.spans();
    expect(spans.filter((span) => span.attributes[SpanAttributes.errorType] === "no_delegation")).toHaveLength(2);
    expect(
      spans.filter(
        (span) =>
          span.attributes[SpanAttributes.decision] === "allow" &&
          String(span.attributes[SpanAttributes.chain]) === "alice,planner",
      ),
    ).toHaveLength(2);
  });

  test("attack: event callbacks run in the context AsyncLocalStorage gives them, and a lost chain is refused", async () => {
    const { guard, pdp, tracing, forget } = recordedGuard(shared);
    const chain = await guard.forUser(alice).delegate(planner);
    forget();
    const tool = recordedTool();
    const pending: Array<[string, Delegation | undefined, Promise<ToolCallOutcome>]> = [];
    const handler = (where: string) => () => {
      pending.push([where, currentDelegation(), tool.call(resolveDelegation(), readNotes, { tracer: tracing.tracer })]);
    };

    // Registered outside, emitted inside: a plain emitter calls its listeners synchronously, in the emitter's context.
    const plain = new EventEmitter();
    plain.on("call", handler("plain emitter, emitted inside"));
    // An async resource captures the context it was created in: listeners run there, with no chain.
    const resource = new EventEmitterAsyncResource({ name: "hopguard-test" });
    resource.on("call", handler("async-resource emitter created outside"));
    const bound = AsyncResource.bind(handler("callback bound outside"));
    const later = new EventEmitter();
    later.on("call", handler("plain emitter, emitted from an outside timer"));
    const outsideTimer = new Promise<void>((fired) =>
      setTimeout(() => {
        later.emit("call");
        fired();
      }, 2),
    );

    await guard.runAs(chain, async () => {
      plain.emit("call");
      resource.emit("call");
      bound();
      await outsideTimer;
    });
    resource.emitDestroy();

    const results = await Promise.all(
      pending.map(async ([where, ambient, outcome]) => [where, ambient, await outcome] as const),
    );
    expect(results.map(([where, ambient]) => [where, ambient === chain])).toEqual([
      ["plain emitter, emitted inside", true],
      ["async-resource emitter created outside", false],
      ["callback bound outside", false],
      ["plain emitter, emitted from an outside timer", false],
    ]);
    for (const [where, ambient, outcome] of results) {
      if (ambient === chain) {
        expect(outcome.type, where).toBe("allowed");
      } else {
        expect(ambient, where).toBeUndefined();
        expect(NoDelegationError.isInstance(refusedWithError(outcome)), where).toBe(true);
      }
    }
    expect(tool.ran).toHaveLength(1);
    expect(pdp.checks).toHaveLength(2);
    expect(
      tracing
        .spans()
        .map((span) => span.attributes[SpanAttributes.errorType] ?? "decided")
        .sort(),
    ).toEqual(["decided", "no_delegation", "no_delegation", "no_delegation"]);
  });
});

function scopeAdmits(delegation: Delegation, server: string, tool: string): boolean {
  return scopeAdmitsTool(delegation.scope, server, tool);
}

function deepArray(levels: number): unknown[] {
  let value: unknown[] = ["/workspace/alice/notes.md"];
  for (let level = 1; level < levels; level++) value = [value];
  return value;
}
