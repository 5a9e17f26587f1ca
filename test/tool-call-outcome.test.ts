import { GRPC } from "@cerbos/grpc";
import { describe, expect, test } from "vitest";
import {
  approvalRequest,
  createGuard,
  currentDelegation,
  decideToolCall,
  refusalText,
  resolveDelegation,
  runAs,
} from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { memoryTracing, onlySpan } from "./support/tracing.ts";
import { alice, planner, scribe } from "./support/users.ts";

const client = sharedPdpClient();
const guard = createGuard({ client });
const move = {
  server: "filesystem",
  tool: "move_file",
  arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
};

describe("decideToolCall", () => {
  test("allowed, denied and approval-required outcomes come straight from the PDP", async () => {
    const root = guard.forUser(alice);
    expect((await decideToolCall(root, { server: "memory", tool: "read_graph" })).type).toBe("allowed");

    const denied = await decideToolCall(await root.delegate(planner), { ...move });
    expect(denied).toMatchObject({ type: "denied", reason: expect.stringContaining('agent "planner"') });

    const asking = await decideToolCall(await root.delegate(scribe), move);
    expect(asking.type).toBe("approval-required");
    if (asking.type !== "approval-required") return;
    expect(asking.approval.reasons).toEqual(["moving files changes what others rely on"]);
    expect(asking.approval.requestedBy).toEqual(["alice", "scribe"]);
  });

  test("an approval output never turns a deny into an allow", async () => {
    const outsideWorkspace = { ...move, arguments: { source: "/workspace/alice/a.md", destination: "/tmp/a.md" } };
    const decision = await guard.forUser(alice).authorize(outsideWorkspace);
    expect(decision.allowed).toBe(false);
    expect(approvalRequest(decision)).toBeUndefined();
    expect((await decideToolCall(guard.forUser(alice), outsideWorkspace)).type).toBe("denied");
  });

  test("no chain is a denial with a NoDelegationError, recorded as an error span", async () => {
    const tracing = memoryTracing();
    const outcome = await decideToolCall(undefined, move, { tracer: tracing.tracer });
    expect(outcome).toMatchObject({ type: "denied", error: { code: "no_delegation" } });
    expect(onlySpan(tracing.spans(), "hopguard.authorize").attributes["error.type"]).toBe("no_delegation");
  });

  test("bad input and an unreachable PDP are denials, never throws", async () => {
    expect(await decideToolCall(guard.forUser(alice), { server: "", tool: "x" })).toMatchObject({
      type: "denied",
      error: { code: "invalid_input" },
    });
    const unreachable = new GRPC("127.0.0.1:9", { tls: false });
    try {
      const outcome = await decideToolCall(createGuard({ client: unreachable }).forUser(alice), move);
      expect(outcome).toMatchObject({ type: "denied", error: { code: "pdp_unavailable" } });
    } finally {
      unreachable.close();
    }
  });

  test("refusal text names the tool and the reason", () => {
    expect(refusalText({ server: "filesystem", tool: "write_file" }, "denied by scope")).toBe(
      "hopguard refused filesystem/write_file: denied by scope",
    );
  });
});

describe("ambient delegation", () => {
  test("runAs sets the chain across awaits; the deepest chain in effect wins; outside, there is none", async () => {
    const root = guard.forUser(alice);
    const child = await root.delegate(planner);
    const unrelated = guard.forUser(alice);
    expect(currentDelegation()).toBeUndefined();
    await guard.runAs(child, async () => {
      await new Promise((settle) => setTimeout(settle, 5));
      expect(currentDelegation()).toBe(child);
      expect(resolveDelegation(undefined, { not: "a delegation" })).toBe(child);
      // The ambient chain was delegated from the explicit one: the sub-agent's longer chain decides.
      expect(resolveDelegation(root)).toBe(child);
      // An explicit chain the ambient one does not extend keeps its say.
      expect(resolveDelegation(unrelated)).toBe(unrelated);
      await runAs(root, async () => expect(currentDelegation()).toBe(root));
      expect(currentDelegation()).toBe(child);
    });
    expect(resolveDelegation()).toBeUndefined();
  });
});

test("a failing custom mapper is a denial that keeps the error as its cause", async () => {
  const bug = new TypeError("cannot read properties of undefined");
  const mapped = createGuard({
    client,
    mapToolCall: () => {
      throw bug;
    },
  });
  const outcome = await decideToolCall(mapped.forUser(alice), move);
  expect(outcome).toMatchObject({ type: "denied", error: { code: "authorization_failed", cause: bug } });
});
