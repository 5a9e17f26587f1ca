import { join } from "node:path";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { callableTools, guardTools, hopguardMiddleware } from "../../../src/adapters/langchain/index.ts";
import {
  createGuard,
  type Delegation,
  type HopguardWarning,
  NoDelegationError,
  SpanAttributes,
  SpanNames,
  setWarningHandler,
} from "../../../src/index.ts";
import { startRecordingServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";
import { researcher, scribe } from "../../support/users.ts";
import { startWorkspace, toolMessages, type Workspace } from "./support.ts";

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
const recording = await startRecordingServer();
afterAll(() => recording.close());
afterEach(() => setWarningHandler(undefined));

let workspace: Workspace;
let asResearcher: Delegation;
let asScribe: Delegation;
afterAll(() => workspace?.close());
beforeAll(async () => {
  workspace = await startWorkspace("context");
  asResearcher = await guard.forUser(workspace.user).delegate(researcher);
  asScribe = await guard.forUser(workspace.user).delegate(scribe);
});

const ask = { messages: [{ role: "user" as const, content: "go" }] };

describe("the middleware's context", () => {
  test("is typed as required: a config without { delegation } does not compile, and at run time is refused", async () => {
    const warnings: HopguardWarning[] = [];
    setWarningHandler((warning) => warnings.push(warning));
    recording.executed.length = 0;
    const model = fakeModel()
      .respondWithTools([{ name: "read_file", args: { path: join(workspace.dir, "a.md") }, id: "untyped" }])
      .respond(new AIMessage("done"));
    const agent = createAgent({
      model,
      tools: await loadMcpTools("filesystem", recording.client),
      middleware: [hopguardMiddleware({ server: "filesystem", hideTools: false, tracer: tracing.tracer })],
    });
    const compiles = () => {
      // @ts-expect-error the context must carry the chain
      void agent.invoke(ask, { context: {} });
      // @ts-expect-error a config without context is missing it
      void agent.invoke(ask, { recursionLimit: 5 });
      // With the chain bound in the options, the context is optional.
      const bound = createAgent({
        model,
        tools: [],
        middleware: [hopguardMiddleware({ server: "filesystem", delegation: asResearcher })],
      });
      void bound.invoke(ask, { recursionLimit: 5 });
    };
    expect(typeof compiles).toBe("function");

    // The schema parses leniently: a missing chain is hopguard's refusal, which says where it looked.
    const result = await agent.invoke(ask, { context: {} as { delegation: Delegation } });

    expect(recording.executed).toEqual([]);
    expect(toolMessages(result.messages).get("untyped")?.text).toBe(
      "hopguard refused filesystem/read_file: tool filesystem/read_file has no delegation chain: not in " +
        "options.delegation, not in the runtime context's delegation (agent.invoke(input, { context: { delegation } })) " +
        "and no guard.runAs in effect",
    );
    expect(warnings.map((warning) => warning.code)).toEqual(["no_delegation"]);
  });

  test("the chain in the context is the very Delegation given, through the schema", async () => {
    recording.executed.length = 0;
    const model = fakeModel()
      .respondWithTools([{ name: "read_file", args: { path: join(workspace.dir, "notes.md") }, id: "typed" }])
      .respond(new AIMessage("done"));
    const agent = createAgent({
      model,
      tools: await loadMcpTools("filesystem", recording.client),
      middleware: [hopguardMiddleware({ server: "filesystem" })],
    });
    tracing.reset();

    await agent.invoke(ask, { context: { delegation: asResearcher } });

    expect(recording.executed).toEqual(["read_file"]);
    // One decision for the call: the model step's, reused when the tool ran.
    expect(onlySpan(tracing.spans(), SpanNames.authorize).attributes[SpanAttributes.chain]).toEqual([
      "alice",
      "researcher",
    ]);
  });
});

describe("callableTools", () => {
  test("keeps what the chain could call, for createAgent with guardTools", async () => {
    const tools = guardTools(workspace.tools, { server: "filesystem" });
    const names = async (delegation: Delegation) =>
      (await callableTools(tools, { server: "filesystem", delegation })).map((tool) => tool.name);

    const forResearcher = await names(asResearcher);
    const forScribe = await names(asScribe);

    expect(forResearcher).toContain("read_file");
    expect(forResearcher).not.toContain("write_file");
    expect(forScribe).toContain("write_file");
    // In the order given, and the guarded tools themselves.
    expect(forScribe).toEqual(tools.map((tool) => tool.name).filter((name) => forScribe.includes(name)));
  });

  test("throws without a chain, naming where it looked, and warns once", async () => {
    const warnings: HopguardWarning[] = [];
    setWarningHandler((warning) => warnings.push(warning));
    const listing = callableTools(workspace.tools, { server: "filesystem" });
    await expect(listing).rejects.toSatisfy(NoDelegationError.isInstance);
    await expect(callableTools(workspace.tools, { server: "filesystem" })).rejects.toThrow(
      "listing the callable tools has no delegation chain: not in options.delegation and no guard.runAs in effect",
    );
    expect(warnings).toHaveLength(1);
  });

  test("a server name with no policy lists nothing, and says why", async () => {
    const warnings: HopguardWarning[] = [];
    setWarningHandler((warning) => warnings.push(warning));
    tracing.reset();
    const listed = await callableTools(workspace.tools, { server: "filesytem", delegation: asResearcher });
    expect(listed).toEqual([]);
    expect(onlySpan(tracing.spans(), SpanNames.listTools).attributes[SpanAttributes.policyMissing]).toEqual([
      "mcp::filesytem",
    ]);
    expect(warnings.map((warning) => warning.code)).toEqual(["no_policy"]);
  });
});
