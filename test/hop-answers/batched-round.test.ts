import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Value } from "@cerbos/core";
import fc from "fast-check";
import { describe, expect, inject, test } from "vitest";
import { toActor } from "../../src/actor.ts";
import { defaultToolCallCheck, type Hop, hopPrincipal, validateToolCall } from "../../src/cerbos-request.ts";
import type {
  AccessEvaluationBatchRequest,
  AccessEvaluationBatchResponse,
} from "../../src/hop-answers/authzen-messages.ts";
import { grpcAuthZen } from "../../src/hop-answers/grpc-authzen.ts";
import { checkHops } from "../../src/hop-check.ts";
import {
  type ActorInput,
  createGuard,
  type Decision,
  type Delegation,
  decideToolCall,
  type PdpClient,
  SpanAttributes,
  SpanNames,
  type ToolCall,
} from "../../src/index.ts";
import { startLocalPdp } from "../../src/local-pdp.ts";
import type { AuthZenBatchClient } from "../../src/pdp-client.ts";
import { rootScope } from "../../src/scope.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { tempDir } from "../support/temp-dir.ts";
import { memoryTracing, onlySpan } from "../support/tracing.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "../support/users.ts";
import {
  callId,
  comparable,
  countingClient,
  failure,
  inAlice,
  moveInWorkspace,
  perHopClient,
  readNotes,
} from "./batch-clients.ts";

const shared = sharedPdpClient();

describe("one AuthZEN batch for every hop", () => {
  test("a stock @cerbos/grpc client sends all hops in one batch; move_file's approval output survives", async () => {
    const { tracer, spans } = memoryTracing();
    const guard = createGuard({ client: shared, tracer });
    const chain = await guard.forUser(alice).delegate(scribe);

    const outcome = await decideToolCall(chain, moveInWorkspace);

    expect(outcome.type).toBe("approval-required");
    const { decision } = outcome as { decision: Decision };
    expect(decision.allowed).toBe(true);
    expect(decision.hops.map((hop) => [hop.principalId, hop.effect, hop.policy])).toEqual([
      ["alice", "EFFECT_ALLOW", "resource.mcp::filesystem.vdefault"],
      ["scribe", "EFFECT_ALLOW", "resource.mcp::filesystem.vdefault"],
    ]);
    // Every hop's own rule output, as checkResources would give it.
    expect(decision.outputs).toEqual(
      ["alice", "scribe"].map((principalId) => ({
        principalId,
        source: "resource.mcp::filesystem.vdefault#move-in-workspace",
        value: { approval: "required", reason: "moving files changes what others rely on" },
      })),
    );
    // AuthZEN answers carry no Cerbos call id: the batch answered, not one checkResources per hop.
    expect(decision.hops.map((hop) => hop.cerbosCallId)).toEqual(["", ""]);
    const span = onlySpan(spans(), SpanNames.authorize);
    expect(span.attributes).toMatchObject({
      [SpanAttributes.decision]: "allow",
      [SpanAttributes.approval]: "required",
      [SpanAttributes.hopEffects]: ["EFFECT_ALLOW", "EFFECT_ALLOW"],
      [SpanAttributes.hopPolicies]: ["resource.mcp::filesystem.vdefault", "resource.mcp::filesystem.vdefault"],
      [SpanAttributes.hopCallIds]: ["", ""],
    });
  });

  test("a round is one request: subjects per hop, the resource and action once, meta and request id asked for", async () => {
    const { client, sent } = countingClient(shared);
    const guard = createGuard({ client });
    const root = guard.forUser(alice);
    const chain = await (await root.delegate(planner)).delegate(researcher);
    expect(sent.batches).toHaveLength(2); // one per delegation round
    sent.batches.length = 0;

    const decision = await chain.authorize(readNotes);

    expect(decision.allowed).toBe(true);
    expect(sent.checks).toBe(0);
    expect(sent.batches).toHaveLength(1);
    const [request] = sent.batches as [AccessEvaluationBatchRequest];
    expect(request.context).toEqual({ "cerbos.includeMeta": true, "cerbos.requestId": decision.requestId });
    expect(request.action).toEqual({ name: "read_file" });
    expect(request.resource).toEqual({
      type: "mcp::filesystem",
      id: "read_file",
      properties: { server: "filesystem", tool: "read_file", arguments: readNotes.arguments, annotations: {} },
    });
    expect(request.evaluations.map((evaluation) => [evaluation.subject?.id, evaluation.subject?.type])).toEqual([
      ["alice", "user"],
      ["planner", "agent"],
      ["researcher", "agent"],
    ]);
    expect(request.evaluations[2]?.subject?.properties).toMatchObject({
      "cerbos.roles": ["agent", "researcher"],
      chain: ["alice", "planner", "researcher"],
      depth: 2,
      kind: "agent",
      onBehalfOf: { id: "alice", roles: ["user"] },
    });
  });

  test("differential: the batch decides exactly as one checkResources per hop, over every policy in policies/", async () => {
    const batched = countingClient(shared);
    const perHop = perHopClient(shared);
    const guards = { batched: createGuard({ client: batched.client }), perHop: createGuard({ client: perHop }) };
    const users = [alice, bob, ivanTheIntern];
    const agentPaths: ActorInput[][] = [
      [],
      [planner],
      [scribe],
      [researcher],
      [planner, researcher],
      [planner, scribe],
      [scribe, planner],
      [planner, scribe, researcher],
      [{ id: "outsider", roles: ["agent"], attr: { tenant: "globex" } }],
      [{ id: "root", roles: ["agent", "admin"] }],
    ];
    // Build every chain on both sides: each delegation is itself a round, batched on one side only.
    const chains: { batched: Delegation; perHop: Delegation }[] = [];
    for (const user of users) {
      for (const path of agentPaths) {
        let pair = { batched: guards.batched.forUser(user), perHop: guards.perHop.forUser(user) };
        for (const agent of path) {
          const [left, right] = await Promise.all([
            pair.batched.delegate(agent).then(
              (next) => ({ next }),
              (error: Error) => ({ error: `${error.name}: ${error.message}` }),
            ),
            pair.perHop.delegate(agent).then(
              (next) => ({ next }),
              (error: Error) => ({ error: `${error.name}: ${error.message}` }),
            ),
          ]);
          expect("error" in left ? left.error : left.next.chain).toEqual(
            "error" in right ? right.error : right.next.chain,
          );
          if ("error" in left || "error" in right) break;
          pair = { batched: left.next, perHop: right.next };
          chains.push(pair);
        }
        if (path.length === 0) chains.push(pair);
      }
    }
    expect(chains.length).toBeGreaterThan(15);

    const path = fc.oneof(
      fc.constantFrom("alice", "bob", "ivan").map((user) => `/workspace/${user}`),
      fc
        .tuple(fc.constantFrom("alice", "bob", "ivan"), fc.string({ maxLength: 12 }))
        .map(([user, rest]) => `/workspace/${user}/${rest}`),
      fc.constantFrom(
        "/workspace/alice/../bob/x",
        "/workspace/alicex/y",
        "/etc/shadow",
        "",
        "/workspace/alice\u0000/x",
      ),
    );
    const filesystemCall = fc.oneof(
      fc.record({
        tool: fc.constantFrom(
          "read_file",
          "read_text_file",
          "list_directory",
          "write_file",
          "edit_file",
          "get_file_info",
        ),
        arguments: fc.record({ path }, { requiredKeys: [] }),
      }),
      fc.record({ tool: fc.constant("read_multiple_files"), arguments: fc.record({ paths: fc.array(path) }) }),
      fc.record({ tool: fc.constant("move_file"), arguments: fc.record({ source: path, destination: path }) }),
      fc.record({ tool: fc.constant("list_allowed_directories"), arguments: fc.constant({}) }),
    );
    const call: fc.Arbitrary<ToolCall> = fc.oneof(
      filesystemCall.map((picked) => ({ server: "filesystem", ...picked })),
      fc
        .constantFrom("read_graph", "search_nodes", "create_entities", "add_observations", "delete_entities")
        .map((tool) => ({ server: "memory", tool })),
      fc
        .record({
          tool: fc.constantFrom("list_notes", "delete_note"),
          annotations: fc.record(
            { readOnlyHint: fc.oneof(fc.boolean(), fc.constant("true")), destructiveHint: fc.boolean() },
            { requiredKeys: [] },
          ),
        })
        .map((picked) => ({ server: "notes", ...picked })),
      // No policy at all; and names that are also properties of every JS object.
      fc
        .record({
          server: fc.constantFrom("nothing", "filesystem", "memory"),
          tool: fc.constantFrom("constructor", "__proto__", "toString", "hasOwnProperty"),
        })
        .map((picked) => ({ ...picked, arguments: { path: inAlice("x") } })),
    );

    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...chains), call, async (pair, picked) => {
        const [left, right] = await Promise.all([pair.batched.authorize(picked), pair.perHop.authorize(picked)]);
        expect(comparable(left)).toEqual(comparable(right));
        for (const hop of right.hops) expect(hop.cerbosCallId).toMatch(callId);
      }),
      // Seeded: a run finds the same calls every time (a new seed is a change of its own, in a commit).
      { numRuns: 250, seed: 20261127 },
    );
    // The batch side never fell back; both sides asked the PDP.
    expect(batched.sent.checks).toBe(0);
    expect(batched.sent.batches.length).toBeGreaterThan(250);
    expect(perHop.checks()).toBeGreaterThan(250);
  });

  test("what a batch could not say the same way goes one checkResources per hop, and is decided as before", async () => {
    // Cerbos takes subject properties named cerbos.* as its own (cerbos.roles would become the agent's roles).
    const sneaky = { id: "sneaky", roles: ["agent"], attr: { "cerbos.roles": ["user", "admin"] } };
    const { client, sent } = countingClient(shared);
    const { tracer, spans } = memoryTracing();
    const chain = await createGuard({ client, tracer }).forUser(alice).delegate(sneaky);
    const decision = await chain.authorize({ server: "memory", tool: "delete_entities" });
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("sneaky");
    expect(decision.hops.every((hop) => callId.test(hop.cerbosCallId))).toBe(true);
    expect(sent.batches).toHaveLength(1); // the delegation round, before the agent joined
    expect(sent.checks).toBe(2);
    expect(onlySpan(spans(), SpanNames.authorize).attributes[SpanAttributes.deniedBy]).toBe("sneaky");

    // Repeated roles: checkResources is refused by the PDP, and a batch would not have been.
    const twice = createGuard({ client }).forUser({ ...alice, roles: ["user", "user"] });
    const error = await failure(twice.authorize(readNotes));
    expect(error.message).toMatch(/INVALID_ARGUMENT/);
    expect(sent.batches).toHaveLength(1);
  });

  test("HTTP is the same seam: a client that posts the batch as JSON decides alike", async () => {
    const url = `${inject("pdpHttpAddress")}/access/v1/evaluations`;
    const http: PdpClient = {
      checkResources: () => Promise.reject(new Error("not used")),
      planResources: () => Promise.reject(new Error("not used")),
      async accessEvaluationBatch(request, { signal }) {
        const response = await fetch(url, { method: "POST", body: JSON.stringify(request), signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        return (await response.json()) as AccessEvaluationBatchResponse;
      },
    };
    const viaHttp = await createGuard({ client: http }).forUser(alice).delegate(scribe);
    const viaGrpc = await createGuard({ client: shared }).forUser(alice).delegate(scribe);
    for (const call of [moveInWorkspace, readNotes, { ...readNotes, arguments: { path: "/etc/passwd" } }]) {
      expect(comparable(await viaHttp.authorize(call))).toEqual(comparable(await viaGrpc.authorize(call)));
    }
  });
});

describe("the grouping hazard: evaluations that share (subject id, resource kind and id)", () => {
  // Two hops with one principal id and different attributes: only one of them may read alice's notes.
  const hopFor = (id: string, attr: Record<string, Value>): Hop => {
    const actor = toActor({ id, roles: ["user"], attr }, "user");
    const scope = rootScope(undefined, 5, "scope");
    return {
      actor,
      kind: "user",
      depth: 0,
      principal: hopPrincipal({ actor, user: actor, kind: "user", chain: [id], scope }),
    };
  };
  const owner = hopFor("alice", { workspace: "/workspace/alice" });
  const stranger = hopFor("alice", { workspace: "/workspace/mallory" });
  const check = defaultToolCallCheck(validateToolCall(readNotes));

  test("the PDP judges such a group by its first evaluation: one batch would mix up their answers", async () => {
    // Not hopguard's code: this pins the PDP behaviour the lanes exist for. If it ever fails, Cerbos has changed.
    const batch = grpcAuthZen(shared) as AuthZenBatchClient;
    const subject = (hop: Hop) => ({
      type: "user",
      id: hop.principal.id,
      properties: { ...hop.principal.attr, "cerbos.roles": [...hop.principal.roles] },
    });
    const ask = (hops: Hop[]) =>
      batch.accessEvaluationBatch(
        {
          context: { "cerbos.includeMeta": true },
          resource: { type: check.resource.kind, id: check.resource.id, properties: check.resource.attr },
          action: { name: check.action },
          evaluations: hops.map((hop) => ({ subject: subject(hop) })),
        },
        { signal: new AbortController().signal },
      );
    expect((await ask([owner, stranger])).evaluations.map((answer) => answer.decision)).toEqual([true, true]);
    expect((await ask([stranger, owner])).evaluations.map((answer) => answer.decision)).toEqual([false, false]);
  });

  test("hopguard never puts them in one batch: each gets its own answer, in either order", async () => {
    const { client, sent } = countingClient(shared);
    const options = { client, timeoutMs: 2000, requestId: "hazard" };
    const effects = async (hops: Hop[]) => (await checkHops(hops, check, options)).map((hop) => hop.effect);

    expect(await effects([owner, stranger])).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
    expect(await effects([stranger, owner])).toEqual(["EFFECT_DENY", "EFFECT_ALLOW"]);
    expect(await effects([stranger, owner, stranger])).toEqual(["EFFECT_DENY", "EFFECT_ALLOW", "EFFECT_DENY"]);
    // Two batches ("lanes") for two, three for three; no batch ever held one id twice.
    expect(sent.batches.map((request) => request.evaluations.length)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(sent.checks).toBe(0);
    // The resource id is never renamed: policies keep keying on R.id, the tool's name.
    for (const request of sent.batches) expect(request.resource?.id).toBe("read_file");
  });

  test("distinct ids share one batch", async () => {
    const { client, sent } = countingClient(shared);
    const bobHop = hopFor("bob", { workspace: "/workspace/bob" });
    const hops = await checkHops([bobHop, owner], check, { client, timeoutMs: 2000, requestId: "x" });
    expect(hops.map((hop) => hop.effect)).toEqual(["EFFECT_DENY", "EFFECT_ALLOW"]);
    expect(sent.batches.map((request) => request.evaluations.length)).toEqual([2]);
  });
});

describe("fail closed on a malformed answer: PdpUnavailableError for the round, never an allow", () => {
  type Result = Record<string, unknown> & { meta?: { actions?: Record<string, Record<string, unknown>> } };
  /** The second hop's (scribe's) answer context and its result entry, to tamper with. */
  const scribeContext = (answers: unknown[]) => (answers[1] as { context: Record<string, unknown> }).context;
  const scribeResults = (answers: unknown[]) =>
    (scribeContext(answers)["cerbos.response"] as { results: Result[] }).results;
  const scribeResult = (answers: unknown[]) => scribeResults(answers)[0] as Result;
  const malformedJson: [string, (answers: unknown[]) => void][] = [
    ["an evaluation that is null", (answers) => answers.splice(1, 1, null)],
    ["results that are not a list", (answers) => (scribeContext(answers)["cerbos.response"] = { results: {} })],
    ["the resource twice", (answers) => scribeResults(answers).push({ ...scribeResult(answers) })],
    ["an effect that is not a string", (answers) => (scribeResult(answers).actions = { move_file: 1 })],
    [
      "a matched policy that is not a string",
      (answers) => {
        const effectMeta = scribeResult(answers).meta?.actions?.move_file;
        if (effectMeta !== undefined) effectMeta.matchedPolicy = ["resource.mcp::filesystem.vdefault"];
      },
    ],
    ["outputs that are not a list", (answers) => (scribeResult(answers).outputs = { src: "x" })],
    ["an output without its source", (answers) => (scribeResult(answers).outputs = [{ action: "move_file" }])],
  ];
  for (const [what, tamper] of malformedJson) {
    test(`attack: an answer with ${what}`, async () => {
      const real = grpcAuthZen(shared) as AuthZenBatchClient;
      const perHop = perHopClient(shared);
      const client: PdpClient = {
        ...perHop,
        async accessEvaluationBatch(request, options) {
          const answer = await real.accessEvaluationBatch(request, options);
          // Only the authorize round is tampered with; the delegation before it is answered truly.
          if (request.action?.name === "move_file") tamper(answer.evaluations);
          return answer;
        },
      };
      const { tracer, spans } = memoryTracing();
      const scribeChain = await createGuard({ client, tracer }).forUser(alice).delegate(scribe);
      const error = await failure(scribeChain.authorize(moveInWorkspace));
      expect(error.failure).toBe("error");
      expect(error.message).toMatch(/scribe/);
      expect(perHop.checks()).toBe(0);
      expect(onlySpan(spans(), SpanNames.authorize).attributes[SpanAttributes.decision]).toBe("error");
    });
  }
});

describe("timers and the audit trail", () => {
  test("no timer fires after an answered round, and no answered request is aborted later", async () => {
    const { client, sent } = countingClient(shared);
    const timeoutMs = 700;
    const chain = await createGuard({ client, timeoutMs }).forUser(alice).delegate(scribe);
    const original = globalThis.setTimeout;
    const started: number[] = [];
    const fired: number[] = [];
    globalThis.setTimeout = ((callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
      if (delay === timeoutMs) started.push(delay);
      return original(
        (...inner: unknown[]) => {
          if (delay === timeoutMs) fired.push(delay);
          callback(...inner);
        },
        delay,
        ...args,
      );
    }) as typeof setTimeout;
    let decisions: Decision[];
    try {
      decisions = await Promise.all([chain.authorize(readNotes), chain.authorize(moveInWorkspace)]);
    } finally {
      globalThis.setTimeout = original;
    }
    await new Promise((settle) => setTimeout(settle, timeoutMs + 300));
    expect(decisions.map((decision) => decision.allowed)).toEqual([true, true]);
    expect(started).toHaveLength(2); // one deadline per round, both started...
    expect(fired).toEqual([]); // ...and both cleared when the round was answered
    expect(sent.signals.slice(-2).map((signal) => signal.aborted)).toEqual([false, false]);
  });

  test("each batched hop is its own entry in the PDP's decision log, found by request id and principal", async () => {
    const auditLogFile = join(tempDir("hopguard-batch-audit-"), "audit.log");
    const pdp = await startLocalPdp({ auditLogFile });
    try {
      const chain = await (await createGuard({ client: pdp.client }).forUser(alice).delegate(planner)).delegate(
        researcher,
      );
      const decision = await chain.authorize(readNotes);
      expect(decision.hops.map((hop) => hop.cerbosCallId)).toEqual(["", "", ""]);
      type Entry = {
        "log.kind"?: string;
        checkResources?: {
          inputs?: { requestId?: string; principal?: { id?: string } }[];
          outputs?: { actions?: Record<string, { effect?: string }> }[];
        };
      };
      let entries: Entry[] = [];
      for (let attempt = 0; attempt < 100 && entries.length < 3; attempt++) {
        await new Promise((settle) => setTimeout(settle, 50));
        entries = readFileSync(auditLogFile, "utf8")
          .split("\n")
          .filter((line) => line.trim() !== "")
          .map((line) => JSON.parse(line) as Entry)
          .filter(
            (entry) =>
              entry["log.kind"] === "decision" && entry.checkResources?.inputs?.[0]?.requestId === decision.requestId,
          );
      }
      const logged = entries.map((entry) => [
        entry.checkResources?.inputs?.[0]?.principal?.id,
        entry.checkResources?.outputs?.[0]?.actions?.read_file?.effect,
      ]);
      expect(logged.sort()).toEqual(decision.hops.map((hop) => [hop.principalId, hop.effect]).sort());
    } finally {
      await pdp.stop();
    }
  });
});
