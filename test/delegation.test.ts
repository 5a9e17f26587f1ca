import { describe, expect, test } from "vitest";
import {
  createGuard,
  type Delegation,
  DelegationError,
  type HopguardErrorCode,
  type HopguardWarning,
  InvalidInputError,
  type PdpClient,
  setWarningHandler,
} from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "./support/users.ts";

const client = sharedPdpClient();
const guard = createGuard({ client });
const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const writeReport = {
  server: "filesystem",
  tool: "write_file",
  arguments: { path: "/workspace/alice/report.md", content: "done" },
};

async function expectDelegationError(attempt: Promise<unknown>, code: HopguardErrorCode): Promise<DelegationError> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(DelegationError.isInstance(error), `expected a DelegationError, got ${String(error)}`).toBe(true);
  expect((error as DelegationError).code).toBe(code);
  return error as DelegationError;
}

describe("a chain of alice → planner → researcher", () => {
  test("is allowed only when every hop is, and reports each hop's effect and policy", async () => {
    const chain = await (await guard.forUser(alice).delegate(planner)).delegate(researcher);
    expect(chain.chain).toEqual(["alice", "planner", "researcher"]);
    expect(chain.user.id).toBe("alice");
    expect(chain.agent?.id).toBe("researcher");

    const decision = await chain.authorize(readNotes);

    expect(decision.allowed).toBe(true);
    expect(decision.deniedBy).toBeUndefined();
    expect(decision.hops.map((hop) => [hop.principalId, hop.kind, hop.depth, hop.effect])).toEqual([
      ["alice", "user", 0, "EFFECT_ALLOW"],
      ["planner", "agent", 1, "EFFECT_ALLOW"],
      ["researcher", "agent", 2, "EFFECT_ALLOW"],
    ]);
    for (const hop of decision.hops) {
      expect(hop.policy).toBe("resource.mcp::filesystem.vdefault");
      expect(hop.source).toBe("pdp");
      // One AuthZEN batch for the three hops: its answers carry no Cerbos call id.
      expect(hop.cerbosCallId).toBe("");
    }
  });

  test("without batching, asks each hop on its own, and each hop has its Cerbos call id", async () => {
    const unbatched = createGuard({ client, batch: false });
    const chain = await (await unbatched.forUser(alice).delegate(planner)).delegate(researcher);
    const decision = await chain.authorize(readNotes);
    expect(decision.allowed).toBe(true);
    for (const hop of decision.hops) {
      expect(hop.policy).toBe("resource.mcp::filesystem.vdefault");
      expect(hop.cerbosCallId).toMatch(/^[0-9A-Z]{26}$/);
    }
    expect(new Set(decision.hops.map((hop) => hop.cerbosCallId)).size).toBe(3);
  });

  test("is denied by the user hop when the user may not, even though the agents could", async () => {
    // ivan is an intern: the deny rule on his onBehalfOf roles reaches every hop, and he is hop 0.
    const chain = await guard.forUser(ivanTheIntern).delegate(scribe);
    const decision = await chain.authorize({
      server: "filesystem",
      tool: "write_file",
      arguments: { path: "/workspace/ivan/a.md", content: "x" },
    });
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("ivan");
    expect(decision.reason).toContain('denied by user "ivan"');
  });

  test("is denied by the acting agent when only it lacks the right", async () => {
    const chain = await guard.forUser(alice).delegate(planner);
    const decision = await chain.authorize(writeReport);
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("planner");
    expect(decision.hops.map((hop) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
  });

  test("is denied by a middle agent: a writer below a non-writer planner cannot write", async () => {
    const chain = await (await guard.forUser(alice).delegate(planner)).delegate(scribe);
    const decision = await chain.authorize(writeReport);
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("planner");
    expect(decision.hops.map((hop) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_DENY", "EFFECT_ALLOW"]);
    expect(decision.reason).toContain('denied by agent "planner" (hop 1 of alice → planner → scribe)');
  });

  test("a writer acting directly for an engineering user may write", async () => {
    const chain = await guard.forUser(alice).delegate(scribe);
    expect((await chain.authorize(writeReport)).allowed).toBe(true);
  });

  test("conditions on onBehalfOf apply at every hop: an agent cannot read outside its user's workspace", async () => {
    const chain = await guard.forUser(alice).delegate(planner);
    const bobsNotes = await chain.authorize({
      server: "filesystem",
      tool: "read_file",
      arguments: { path: "/workspace/bob/notes.md" },
    });
    expect(bobsNotes.allowed).toBe(false);
    expect(bobsNotes.deniedBy).toBe("alice");
    const traversal = await chain.authorize({
      server: "filesystem",
      tool: "read_file",
      arguments: { path: "/workspace/alice/../bob/notes.md" },
    });
    expect(traversal.allowed).toBe(false);
  });

  test("the same agent acting for a sales user may not write: onBehalfOf decides, not the agent alone", async () => {
    const forBob = await guard.forUser(bob).delegate(scribe);
    const decision = await forBob.authorize({
      server: "filesystem",
      tool: "write_file",
      arguments: { path: "/workspace/bob/report.md", content: "x" },
    });
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("bob");
  });
});

describe("delegation", () => {
  test("is itself authorized by every hop: a planner may not hand work to another planner", async () => {
    const fromPlanner = await guard.forUser(alice).delegate(planner);
    const error = await expectDelegationError(
      fromPlanner.delegate({ id: "planner-2", roles: ["agent", "planner"] }),
      "delegation_denied",
    );
    expect(error.decision?.deniedBy).toBe("planner");
    expect(error.decision?.hops.map((hop) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
    expect(error.chain).toEqual(["alice", "planner"]);
    expect(error.agentId).toBe("planner-2");
  });

  test("to an agent of another tenant is denied by a condition on onBehalfOf", async () => {
    await expectDelegationError(
      guard.forUser(alice).delegate({ id: "outsider", roles: ["agent"], attr: { tenant: "globex" } }),
      "delegation_denied",
    );
  });

  test("the policy sees the chain: a researcher (not a planner) cannot delegate at all", async () => {
    const chain = await guard.forUser(alice).delegate(researcher);
    const error = await expectDelegationError(chain.delegate(scribe), "delegation_denied");
    expect(error.decision?.deniedBy).toBe("researcher");
  });

  test("narrows scope: the child holds only what it asked for, and the PDP sees it", async () => {
    const narrowed = await (await guard.forUser(alice).delegate(planner)).delegate({
      ...researcher,
      scope: { tools: ["filesystem/read_*"] },
    });
    expect(narrowed.scope.tools).toEqual(["filesystem/read_*"]);
    expect((await narrowed.authorize(readNotes)).allowed).toBe(true);

    const listing = await narrowed.authorize({
      server: "filesystem",
      tool: "list_allowed_directories",
      arguments: {},
    });
    expect(listing.allowed).toBe(false);
    expect(listing.deniedBy).toBe("scope");
    expect(listing.hops).toEqual([]);
    expect(listing.reason).toContain("outside");
  });

  test("inherits the parent's scope when the child asks for none", async () => {
    const parent = await guard.forUser(alice).delegate({ ...planner, scope: { tools: ["filesystem/read_file"] } });
    const child = await parent.delegate(researcher);
    expect(child.scope.tools).toEqual(["filesystem/read_file"]);
    expect((await child.authorize({ server: "memory", tool: "read_graph" })).deniedBy).toBe("scope");
  });

  test("rejects a scope wider than the parent's, and never asks the PDP", async () => {
    const counting = countingClient(client);
    const parent = await createGuard({ client: counting })
      .forUser(alice)
      .delegate({ ...planner, scope: { tools: ["filesystem/read_*"] } });
    counting.calls.length = 0;

    for (const tools of [["filesystem/*"], ["*/read_file"], ["filesystem/read_file", "filesystem/write_file"]]) {
      const error = await expectDelegationError(parent.delegate({ ...researcher, scope: { tools } }), "scope_widened");
      expect(error.message).toContain("not within [filesystem/read_*]");
    }
    expect(counting.calls).toEqual([]);
  });

  test("rejects a later expiry or a deeper limit than the parent's", async () => {
    const soon = Date.now() + 60_000;
    const parent = await guard.forUser(alice).delegate({ ...planner, scope: { expiresAt: soon, maxDepth: 2 } });
    await expectDelegationError(
      parent.delegate({ ...researcher, scope: { expiresAt: new Date(soon + 1000) } }),
      "scope_widened",
    );
    await expectDelegationError(parent.delegate({ ...researcher, scope: { maxDepth: 3 } }), "scope_widened");
    const child = await parent.delegate({ ...researcher, scope: { expiresAt: new Date(soon - 1000).toISOString() } });
    expect(child.scope.expiresAt).toBe(soon - 1000);
    expect(child.scope.maxDepth).toBe(2);
  });

  test("refuses a cycle: an agent already in the chain, or the user", async () => {
    const chain = await (await guard.forUser(alice).delegate(planner)).delegate(researcher);
    await expectDelegationError(chain.delegate({ ...planner }), "delegation_cycle");
    await expectDelegationError(chain.delegate({ id: "alice", roles: ["agent"] }), "delegation_cycle");
  });

  test("refuses to grow past maxDepth, from the guard or from a scope", async () => {
    const shallow = createGuard({ client, maxDepth: 1 });
    const first = await shallow.forUser(alice).delegate(planner);
    await expectDelegationError(first.delegate(researcher), "depth_exceeded");

    const limited = await guard.forUser(alice).delegate({ ...planner, scope: { maxDepth: 1 } });
    await expectDelegationError(limited.delegate(researcher), "depth_exceeded");
    await expectDelegationError(
      guard.forUser(alice).delegate({ ...planner, scope: { maxDepth: 0 } }),
      "depth_exceeded",
    );
  });

  test("an expired delegation can neither delegate nor call tools", async () => {
    const shortLived = await guard.forUser(alice).delegate({ ...planner, scope: { expiresAt: Date.now() + 150 } });
    expect((await shortLived.authorize(readNotes)).allowed).toBe(true);
    await new Promise((settle) => setTimeout(settle, 200));

    const decision = await shortLived.authorize(readNotes);
    expect(decision.allowed).toBe(false);
    expect(decision.deniedBy).toBe("scope");
    expect(decision.reason).toContain("expired");
    await expectDelegationError(shortLived.delegate(researcher), "delegation_expired");
    await expectDelegationError(
      guard.forUser(alice).delegate({ ...planner, scope: { expiresAt: Date.now() - 1 } }),
      "delegation_expired",
    );
  });

  test("is immutable: a chain cannot be edited after the PDP approved it", async () => {
    const chain: Delegation = await guard.forUser(alice).delegate(planner);
    expect(Object.isFrozen(chain)).toBe(true);
    expect(Object.isFrozen(chain.chain)).toBe(true);
    expect(Object.isFrozen(chain.user.attr)).toBe(true);
    expect(() => (chain.chain as string[]).push("mallory")).toThrow(TypeError);
    expect(() => {
      (chain.user.roles as string[])[0] = "admin";
    }).toThrow(TypeError);
  });
});

describe("bad input", () => {
  test("a reserved attribute name is rejected, not overwritten, before anything reaches the PDP", () => {
    for (const name of ["onBehalfOf", "chain", "depth", "kind", "scope"]) {
      expect(() => guard.forUser({ ...alice, attr: { [name]: "forged" } })).toThrow(
        expect.objectContaining({ code: "invalid_input", path: `user.attr.${name}` }),
      );
    }
  });

  test("a reserved attribute on an agent is rejected at delegation", async () => {
    const error = await guard
      .forUser(alice)
      .delegate({ ...planner, attr: { chain: ["alice"] } })
      .catch((thrown: unknown) => thrown);
    expect(InvalidInputError.isInstance(error)).toBe(true);
    expect((error as InvalidInputError).path).toBe("agent.attr.chain");
  });

  test("empty ids, no roles, bad scope patterns and unsendable arguments are typed errors, with no PDP call", async () => {
    const counting = countingClient(client);
    const counted = createGuard({ client: counting });
    expect(() => counted.forUser({ id: "", roles: ["user"] })).toThrow(InvalidInputError);
    expect(() => counted.forUser({ id: "alice", roles: [] })).toThrow(InvalidInputError);
    expect(() => counted.forUser(alice, { scope: { tools: ["read_file"] } })).toThrow(/server\/tool/);
    const root = counted.forUser(alice);
    await expect(root.authorize({ server: "filesystem", tool: "read_file", arguments: { n: 10n } })).rejects.toThrow(
      expect.objectContaining({ code: "invalid_input", path: "call.arguments.n" }),
    );
    await expect(root.authorize({ server: "file/system", tool: "read_file" })).rejects.toThrow(InvalidInputError);
    await expect(root.authorize({ server: "filesystem", tool: "" })).rejects.toThrow(InvalidInputError);
    expect(counting.calls).toEqual([]);
  });

  test("undefined argument values are dropped as JSON drops them, so the PDP still decides", async () => {
    const decision = await guard.forUser(alice).authorize({
      server: "filesystem",
      tool: "read_file",
      arguments: { path: "/workspace/alice/notes.md", encoding: undefined, tail: [1, undefined] },
    });
    expect(decision.allowed).toBe(true);
  });

  test("createGuard rejects a client that is not a Cerbos client, and nonsense limits", () => {
    expect(() => createGuard({ client: {} as PdpClient })).toThrow(InvalidInputError);
    expect(() => createGuard({ client, timeoutMs: 0 })).toThrow(InvalidInputError);
    expect(() => createGuard({ client, maxDepth: -1 })).toThrow(InvalidInputError);
  });
});

describe("requests to the PDP", () => {
  test("go out in parallel, one per hop, each with the chain attributes", async () => {
    const counting = countingClient(client);
    const chain = await (await createGuard({ client: counting }).forUser(alice).delegate(planner)).delegate(researcher);
    counting.calls.length = 0;
    counting.maxInFlight = 0;

    await chain.authorize(readNotes);

    expect(counting.maxInFlight).toBe(3);
    expect(counting.calls.map((call) => call.principal.id)).toEqual(["alice", "planner", "researcher"]);
    const researcherCall = counting.calls[2];
    expect(researcherCall?.principal.attr).toMatchObject({
      kind: "agent",
      depth: 2,
      chain: ["alice", "planner", "researcher"],
      onBehalfOf: { id: "alice", roles: ["user"], attr: alice.attr },
      scope: { maxDepth: 5 },
    });
    expect(researcherCall?.resources[0]).toEqual({
      resource: {
        kind: "mcp::filesystem",
        id: "read_file",
        attr: { server: "filesystem", tool: "read_file", arguments: readNotes.arguments, annotations: {} },
      },
      actions: ["read_file"],
    });
    expect(new Set(counting.calls.map((call) => call.requestId)).size).toBe(1);
  });

  test("use a custom mapping when given one", async () => {
    const counting = countingClient(client);
    const mapped = createGuard({
      client: counting,
      mapToolCall: (call) => ({
        resource: { kind: `mcp::${call.server}`, id: call.tool, attr: { ...call.arguments, tool: call.tool } },
        action: "read_file",
      }),
    });
    await mapped.forUser(alice).authorize({ server: "filesystem", tool: "cat", arguments: { path: "/x" } });
    expect(counting.calls[0]?.resources[0]).toEqual({
      resource: { kind: "mcp::filesystem", id: "cat", attr: { path: "/x", tool: "cat" } },
      actions: ["read_file"],
    });
  });
});

type CheckRequest = Parameters<PdpClient["checkResources"]>[0];

/** The real client, recording each request and how many were in flight at once. */
function countingClient(inner: PdpClient): PdpClient & { calls: CheckRequest[]; maxInFlight: number } {
  let inFlight = 0;
  const counting = {
    calls: [] as CheckRequest[],
    maxInFlight: 0,
    async checkResources(request: CheckRequest, options?: Parameters<PdpClient["checkResources"]>[1]) {
      counting.calls.push(request);
      inFlight++;
      counting.maxInFlight = Math.max(counting.maxInFlight, inFlight);
      try {
        return await inner.checkResources(request, options);
      } finally {
        inFlight--;
      }
    },
    planResources: inner.planResources.bind(inner),
  };
  return counting;
}

describe("a resource kind with no Cerbos policy at all", () => {
  test("the reason names the kind instead of blaming a hop, and one warning says so, per kind", async () => {
    const warnings: HopguardWarning[] = [];
    setWarningHandler((warning) => warnings.push(warning));
    try {
      const chain = await guard.forUser(alice).delegate(planner);
      for (let attempt = 0; attempt < 2; attempt++) {
        const decision = await chain.authorize({ server: "filesytm", tool: "read_file" });
        expect(decision.allowed).toBe(false);
        expect(decision.reason).toBe(
          "no Cerbos policy for resource kind mcp::filesytm: every hop was denied by default (is the server name right?)",
        );
      }
      // A kind that has a policy but denies is blamed on its hop, and warns nothing.
      expect((await chain.authorize({ server: "filesystem", tool: "delete_everything" })).reason).toMatch(/^denied by/);
      expect(warnings.map((warning) => warning.code)).toEqual(["no_policy"]);
      expect(warnings[0]?.message).toContain("mcp::filesytm");
    } finally {
      setWarningHandler(undefined);
    }
  });
});
