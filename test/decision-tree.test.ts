import { expect, test } from "vitest";
import { createGuard, formatDecisionTree } from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { alice, planner, researcher } from "./support/users.ts";

const guard = createGuard({ client: sharedPdpClient() });

test("a denied call's tree shows every hop and marks the first that denied", async () => {
  const chain = await (await guard.forUser(alice).delegate(planner)).delegate(researcher);
  const decision = await chain.authorize({
    server: "filesystem",
    tool: "write_file",
    arguments: { path: "/workspace/alice/a.md", content: "x" },
  });
  const lines = formatDecisionTree(decision).split("\n");
  expect(lines[0]).toMatch(/^DENY {2}filesystem\/write_file {2}denied by agent "planner"/);
  expect(lines.slice(1).map((line) => line.replace(/\s+/g, " ").trim().split(" ").slice(0, 4))).toEqual([
    ["├─", "allow", "alice", "(user)"],
    ["├─", "deny", "planner", "(agent)"],
    ["└─", "deny", "researcher", "(agent)"],
  ]);
  // Only the first denying hop is marked: researcher denies too, but the chain stopped at planner.
  expect(lines.map((line) => line.includes("← denied here"))).toEqual([false, false, true, false]);
});

test("a scope refusal says so without inventing hops", async () => {
  const chain = await guard.forUser(alice).delegate({ ...planner, scope: { tools: ["memory/*"] } });
  const tree = formatDecisionTree(await chain.authorize({ server: "filesystem", tool: "read_file" }));
  expect(tree.split("\n")).toEqual([
    expect.stringMatching(/^DENY {2}filesystem\/read_file {2}denied by scope/),
    "  └─ scope  alice → planner  ← denied here",
  ]);
});

test("each hop says where its answer came from: its policy and call id, or the plan cache", async () => {
  const policyDir = new URL("../policies/", import.meta.url);
  const perHop = createGuard({ client: sharedPdpClient(), batch: false }).forUser(alice);
  const read = { server: "memory", tool: "read_graph" };
  expect(formatDecisionTree(await perHop.authorize(read)).split("\n")[1]).toMatch(
    /^ {2}└─ allow {2}alice \(user\) {2}resource\.mcp::memory\.vdefault {2}[0-9A-Z]{26}$/,
  );
  const cached = createGuard({ client: sharedPdpClient(), planCache: { policyDir, watch: false } });
  await cached.planCache?.ready;
  const chain = cached.forUser(alice);
  expect(formatDecisionTree(await chain.authorize(read)).split("\n")[1]).toBe(
    "  └─ allow  alice (user)  resource.mcp::memory.vdefault",
  );
  await expect.poll(() => cached.planCache?.stats().inFlight).toBe(0);
  expect(formatDecisionTree(await chain.authorize(read)).split("\n")[1]).toBe("  └─ allow  alice (user)  from plan");
});
