import { describe, expect, test } from "vitest";
import {
  createGuard,
  type HopguardWarning,
  type PdpClient,
  setWarningHandler,
  type ToolDescriptor,
} from "../src/index.ts";
import { sharedPdpClient } from "./support/pdp.ts";
import { memoryTracing, onlySpan } from "./support/tracing.ts";
import { alice, planner, researcher } from "./support/users.ts";

const client = sharedPdpClient();
const filesystemTools = ["read_file", "write_file", "move_file", "list_allowed_directories", "delete_everything"].map(
  (tool): ToolDescriptor => ({ server: "filesystem", tool }),
);
const memoryTools = ["read_graph", "create_entities", "delete_entities"].map(
  (tool): ToolDescriptor => ({ server: "memory", tool }),
);
const names = (tools: ToolDescriptor[]) => tools.map((tool) => `${tool.server}/${tool.tool}`);

describe("callableTools", () => {
  test("keeps, in order, the tools every hop could call with some arguments", async () => {
    const root = createGuard({ client }).forUser(alice);
    expect(names(await root.callableTools([...filesystemTools, ...memoryTools]))).toEqual([
      "filesystem/read_file",
      "filesystem/write_file",
      "filesystem/move_file",
      "filesystem/list_allowed_directories",
      "memory/read_graph",
      "memory/create_entities",
      "memory/delete_entities",
    ]);
    const viaPlanner = await root.delegate(planner);
    expect(names(await viaPlanner.callableTools([...filesystemTools, ...memoryTools]))).toEqual([
      "filesystem/read_file",
      "filesystem/list_allowed_directories",
      "memory/read_graph",
    ]);
  });

  test("lists a tool whose rule depends on arguments (read_file needs a path in the workspace)", async () => {
    const counting = countingClient(client);
    const chain = await createGuard({ client: counting }).forUser(alice).delegate(planner);
    counting.reset();
    const listed = await chain.callableTools([{ server: "filesystem", tool: "read_file" }]);
    expect(names(listed)).toEqual(["filesystem/read_file"]);
    // Denied with empty arguments by the batch check, then found conditional by a plan, for each hop.
    expect(counting.plans).toBe(2);
  });

  test("applies the chain's scope before asking the PDP", async () => {
    const counting = countingClient(client);
    const chain = await createGuard({ client: counting })
      .forUser(alice)
      .delegate({ ...researcher, scope: { tools: ["memory/*"] } });
    counting.reset();
    expect(names(await chain.callableTools([...filesystemTools, ...memoryTools]))).toEqual(["memory/read_graph"]);
    expect(counting.checkedResources).toBe(2 * memoryTools.length);
  });

  test("costs O(hops) requests, batched to the PDP's per-request limit, not one per tool", async () => {
    const counting = countingClient(client);
    const chain = await (
      await createGuard({ client: counting, maxResourcesPerRequest: 50 }).forUser(alice).delegate(planner)
    ).delegate(researcher);
    const tools = Array.from(
      { length: 200 },
      (_, index): ToolDescriptor => ({
        server: index % 2 === 0 ? "memory" : "filesystem",
        tool: index % 2 === 0 ? "read_graph" : "list_allowed_directories",
      }),
    );
    counting.reset();

    const listed = await chain.callableTools(tools);

    expect(listed).toHaveLength(200);
    expect(counting.checks).toBe(3 * 4);
    expect(counting.largestBatch).toBe(50);
    expect(counting.plans).toBe(0);
  });

  test("an unknown tool is not listed, and an empty list asks nothing", async () => {
    const counting = countingClient(client);
    const root = createGuard({ client: counting }).forUser(alice);
    expect(await root.callableTools([{ server: "filesystem", tool: "format_disk" }])).toEqual([]);
    counting.reset();
    expect(await root.callableTools([])).toEqual([]);
    expect(counting.checks + counting.plans).toBe(0);
  });

  test("a server name with no Cerbos policy lists nothing, and says so on the span and in one warning", async () => {
    const tracing = memoryTracing();
    const warnings: HopguardWarning[] = [];
    setWarningHandler((warning) => warnings.push(warning));
    try {
      const chain = await createGuard({ client, tracer: tracing.tracer }).forUser(alice).delegate(planner);
      const typo = ["read_file", "list_allowed_directories"].map((tool) => ({ server: "filesytem", tool }));
      expect(await chain.callableTools([...typo, ...memoryTools])).toEqual([memoryTools[0]]);
      expect(await chain.callableTools(typo)).toEqual([]);

      const listings = tracing.spans().filter((span) => span.name === "hopguard.list_tools");
      expect(listings.map((span) => span.attributes["hopguard.policy.missing"])).toEqual([
        ["mcp::filesytem"],
        ["mcp::filesytem"],
      ]);
      expect(warnings).toEqual([
        {
          code: "no_policy",
          message: expect.stringMatching(/^hopguard: no Cerbos policy for resource kind mcp::filesytem/),
        },
      ]);
      // A kind that has a policy is never reported, even when it lists nothing for this chain.
      tracing.reset();
      expect(await chain.callableTools([{ server: "filesystem", tool: "delete_everything" }])).toEqual([]);
      expect(onlySpan(tracing.spans(), "hopguard.list_tools").attributes["hopguard.policy.missing"]).toBeUndefined();
    } finally {
      setWarningHandler(undefined);
    }
  });
});

/** The real client, counting requests and resources per request. */
function countingClient(inner: PdpClient) {
  const counting = {
    checks: 0,
    plans: 0,
    checkedResources: 0,
    largestBatch: 0,
    reset() {
      counting.checks = 0;
      counting.plans = 0;
      counting.checkedResources = 0;
      counting.largestBatch = 0;
    },
    checkResources: ((request, options) => {
      counting.checks++;
      counting.checkedResources += request.resources.length;
      counting.largestBatch = Math.max(counting.largestBatch, request.resources.length);
      return inner.checkResources(request, options);
    }) as PdpClient["checkResources"],
    planResources: ((request, options) => {
      counting.plans++;
      return inner.planResources(request, options);
    }) as PdpClient["planResources"],
  };
  return counting;
}
