import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Command, MemorySaver } from "@langchain/langgraph";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { AIMessage, createAgent, fakeModel, type HITLRequest, type Interrupt } from "langchain";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type ApprovalInterrupt, hopguardMiddleware } from "../../../src/adapters/langchain/index.ts";
import {
  createGuard,
  type Delegation,
  runAs,
  SpanAttributes,
  SpanNames,
  ToolCallDeniedError,
} from "../../../src/index.ts";
import { startRecordingServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing } from "../../support/tracing.ts";
import { researcher, scribe } from "../../support/users.ts";
import { startWorkspace, toolMessages, toolsOffered, type Workspace } from "./support.ts";

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
const recording = await startRecordingServer();
afterAll(() => recording.close());

let workspace: Workspace;
let asResearcher: Delegation;
let asScribe: Delegation;
beforeAll(async () => {
  workspace = await startWorkspace("middleware");
  writeFileSync(join(workspace.dir, "notes.md"), "the launch moved to Thursday");
  asResearcher = await guard.forUser(workspace.user).delegate(researcher);
  asScribe = await guard.forUser(workspace.user).delegate(scribe);
});

const ask = { messages: [{ role: "user" as const, content: "go" }] };

describe("hopguardMiddleware", () => {
  test("the model is offered only the tools the chain could call", async () => {
    const recorder = toolsOffered();
    const model = fakeModel().respond(new AIMessage("ok")).respond(new AIMessage("ok"));
    const agent = createAgent({
      model,
      tools: workspace.tools,
      middleware: [hopguardMiddleware({ server: "filesystem" }), recorder.middleware],
    });

    await agent.invoke(ask, { context: { delegation: asResearcher } });
    await agent.invoke(ask, { context: { delegation: asScribe } });

    const [forResearcher = [], forScribe = []] = recorder.offered;
    expect(forResearcher).toContain("read_file");
    expect(forResearcher).toContain("list_allowed_directories");
    for (const denied of ["write_file", "edit_file", "create_directory", "move_file"]) {
      expect(forResearcher).not.toContain(denied);
      expect(forScribe).toContain(denied);
    }
    expect(forScribe.length).toBeLessThanOrEqual(workspace.tools.length);
  });

  test("an allowed and a denied call in one step: the read returns the file, the write never happens", async () => {
    tracing.reset();
    const path = join(workspace.dir, "denied.md");
    const model = fakeModel()
      .respondWithTools([
        { name: "read_file", args: { path: join(workspace.dir, "notes.md") }, id: "mw-read" },
        { name: "write_file", args: { path, content: "x" }, id: "mw-write" },
      ])
      .respond(new AIMessage("done"));
    const agent = createAgent({
      model,
      tools: workspace.tools,
      middleware: [hopguardMiddleware({ server: "filesystem" })],
    });

    const result = await agent.invoke(ask, { context: { delegation: asResearcher } });

    const messages = toolMessages(result.messages);
    expect(messages.get("mw-read")?.status).not.toBe("error");
    expect(messages.get("mw-read")?.text).toContain("the launch moved to Thursday");
    expect(messages.get("mw-write")?.status).toBe("error");
    expect(messages.get("mw-write")?.text).toMatch(
      /^hopguard refused filesystem\/write_file: denied by agent "researcher"/,
    );
    expect(existsSync(path)).toBe(false);
    expect(result.messages.at(-1)?.text).toBe("done");

    const spans = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    const byCall = new Map(spans.map((span) => [span.attributes[SpanAttributes.toolCallId], span.attributes]));
    expect(byCall.get("mw-read")?.[SpanAttributes.decision]).toBe("allow");
    expect(byCall.get("mw-write")?.[SpanAttributes.decision]).toBe("deny");
  });

  describe("move_file, which the policy allows only with a person's approval", () => {
    function movingAgent(id: string) {
      const source = join(workspace.dir, `${id}.md`);
      const destination = join(workspace.dir, `${id}-moved.md`);
      writeFileSync(source, id);
      const model = fakeModel()
        .respondWithTools([{ name: "move_file", args: { source, destination }, id }])
        .respond(new AIMessage("done"));
      const agent = createAgent({
        model,
        tools: workspace.tools,
        middleware: [hopguardMiddleware({ server: "filesystem" })],
        checkpointer: new MemorySaver(),
      });
      const config = { context: { delegation: asScribe }, configurable: { thread_id: id } };
      return { agent, config, source, destination };
    }

    test("pauses the run with a HITL-shaped interrupt, and approve runs it", async () => {
      const { agent, config, source, destination } = movingAgent("approve");

      const paused = await agent.invoke(ask, config);

      const [pause] = paused.__interrupt__ as Interrupt<HITLRequest>[];
      const value = pause?.value as ApprovalInterrupt;
      expect(value.actionRequests).toEqual([
        { name: "move_file", args: { source, destination }, description: expect.stringContaining("moving files") },
      ]);
      expect(value.reviewConfigs).toEqual([{ actionName: "move_file", allowedDecisions: ["approve", "reject"] }]);
      expect(value.hopguard).toMatchObject({ server: "filesystem", tool: "move_file", chain: ["alice", "scribe"] });
      expect(existsSync(source)).toBe(true);

      const resumed = await agent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), config);

      expect(resumed.__interrupt__).toBeUndefined();
      expect(existsSync(source)).toBe(false);
      expect(readFileSync(destination, "utf8")).toBe("approve");
      expect(toolMessages(resumed.messages).get("approve")?.status).not.toBe("error");
    });

    test("reject does not run it; the model reads the reviewer's message", async () => {
      const { agent, config, source, destination } = movingAgent("reject");

      await agent.invoke(ask, config);
      const resumed = await agent.invoke(
        new Command({ resume: { decisions: [{ type: "reject", message: "keep it where it is" }] } }),
        config,
      );

      expect(existsSync(source)).toBe(true);
      expect(existsSync(destination)).toBe(false);
      const refused = toolMessages(resumed.messages).get("reject");
      expect(refused?.status).toBe("error");
      expect(refused?.text).toContain("a person did not approve it: keep it where it is");
    });

    test("approval never turns a deny into an allow: a chain that may not move is refused unasked", async () => {
      const { agent, source, destination } = movingAgent("never");

      const result = await agent.invoke(ask, {
        context: { delegation: asResearcher },
        configurable: { thread_id: "never" },
      });

      expect(result.__interrupt__).toBeUndefined();
      expect(toolMessages(result.messages).get("never")?.status).toBe("error");
      expect(existsSync(source)).toBe(true);
      expect(existsSync(destination)).toBe(false);
    });
  });

  describe("against a server that records what ran", () => {
    async function recordingAgent(responses: { name: string; args: Record<string, unknown>; id: string }[]) {
      recording.executed.length = 0;
      const recorder = toolsOffered();
      const model = fakeModel().respondWithTools(responses).respond(new AIMessage("done"));
      const tools = await loadMcpTools("filesystem", recording.client);
      return { model, tools, recorder };
    }

    test("with no chain, the model is offered no tools and a call is refused without running", async () => {
      const { model, tools, recorder } = await recordingAgent([
        { name: "read_file", args: { path: "/workspace/alice/a.md" }, id: "orphan" },
      ]);
      const agent = createAgent({
        model,
        tools,
        middleware: [hopguardMiddleware({ server: "filesystem" }), recorder.middleware],
      });

      const result = await agent.invoke(ask);

      expect(recorder.offered[0]).toEqual([]);
      expect(toolMessages(result.messages).get("orphan")?.text).toContain("has no delegation chain");
      expect(recording.executed).toEqual([]);
    });

    test("the chain set by runAs is used when the context has none", async () => {
      const { model, tools } = await recordingAgent([
        { name: "read_file", args: { path: join(workspace.dir, "notes.md") }, id: "ambient" },
      ]);
      const agent = createAgent({ model, tools, middleware: [hopguardMiddleware({ server: "filesystem" })] });

      await runAs(asResearcher, () => agent.invoke(ask));

      expect(recording.executed).toEqual(["read_file"]);
    });

    test('onDenied: "throw" ends the run with ToolCallDeniedError, as the cause of a MiddlewareError', async () => {
      const { model, tools } = await recordingAgent([
        { name: "write_file", args: { path: join(workspace.dir, "a.md"), content: "x" }, id: "thrown" },
      ]);
      const agent = createAgent({
        model,
        tools,
        middleware: [hopguardMiddleware({ server: "filesystem", onDenied: "throw", hideTools: false })],
      });

      const error = await agent
        .invoke(ask, { context: { delegation: asResearcher } })
        .catch((thrown: unknown) => thrown);

      // LangChain wraps whatever a middleware throws, keeping the name and message and the error as `cause`.
      expect((error as Error).name).toBe("ToolCallDeniedError");
      const cause = (error as Error).cause;
      expect(ToolCallDeniedError.isInstance(cause)).toBe(true);
      expect((cause as ToolCallDeniedError).decision.deniedBy).toBe("researcher");
      expect(recording.executed).toEqual([]);
    });

    test("two calls needing approval in one step are two interrupts, each resumed by its id", async () => {
      const args = { source: join(workspace.dir, "a.md"), destination: join(workspace.dir, "b.md") };
      const { model, tools } = await recordingAgent([
        { name: "move_file", args, id: "first" },
        { name: "move_file", args, id: "second" },
      ]);
      const agent = createAgent({
        model,
        tools,
        middleware: [hopguardMiddleware({ server: "filesystem" })],
        checkpointer: new MemorySaver(),
      });
      const config = { context: { delegation: asScribe }, configurable: { thread_id: "two-approvals" } };

      const paused = await agent.invoke(ask, config);
      const [first, second] = paused.__interrupt__ ?? [];
      expect(recording.executed).toEqual([]);
      const resume = {
        [String(first?.id)]: { decisions: [{ type: "approve" }] },
        [String(second?.id)]: { decisions: [{ type: "reject" }] },
      };
      const resumed = await agent.invoke(new Command({ resume }), config);

      expect(recording.executed).toEqual(["move_file"]);
      const statuses = [...toolMessages(resumed.messages).values()].map((message) => message.status ?? "success");
      expect(statuses.sort()).toEqual(["error", "success"]);
    });

    test("a tool whose server cannot be told is hidden and refused", async () => {
      const { model, tools, recorder } = await recordingAgent([
        { name: "read_file", args: { path: join(workspace.dir, "notes.md") }, id: "unknown-server" },
      ]);
      const agent = createAgent({ model, tools, middleware: [hopguardMiddleware(), recorder.middleware] });

      const result = await agent.invoke(ask, { context: { delegation: asResearcher } });

      expect(recorder.offered[0]).toEqual([]);
      expect(toolMessages(result.messages).get("unknown-server")?.text).toContain("cannot tell which server");
      expect(recording.executed).toEqual([]);
    });
  });
});
