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
afterAll(() => workspace?.close());
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
      expect(value.hopguard).toEqual({
        chain: ["alice", "scribe"],
        calls: [
          {
            toolCallId: "approve",
            server: "filesystem",
            tool: "move_file",
            reasons: ["moving files changes what others rely on"],
            requestedBy: expect.arrayContaining(["scribe"]),
          },
        ],
      });
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

    test("two calls needing approval in one step are ONE HITL interrupt; each decision answers its own call", async () => {
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
      expect(paused.__interrupt__).toHaveLength(1);
      const value = paused.__interrupt__?.[0]?.value as ApprovalInterrupt;
      expect(value.actionRequests.map((request) => request.name)).toEqual(["move_file", "move_file"]);
      expect(value.reviewConfigs).toHaveLength(2);
      expect(value.hopguard.calls.map((call) => call.toolCallId)).toEqual(["first", "second"]);
      expect(recording.executed).toEqual([]);
      const resume = {
        decisions: [
          { type: "approve", approver: "carol" },
          { type: "reject", message: "not twice" },
        ],
      };
      tracing.reset();
      const resumed = await agent.invoke(new Command({ resume }), config);

      expect(recording.executed).toEqual(["move_file"]);
      const messages = toolMessages(resumed.messages);
      expect(messages.get("first")?.status).not.toBe("error");
      expect(messages.get("second")?.text).toContain("a person did not approve it: not twice");
      const answers = tracing.spans().filter((span) => span.name === SpanNames.approval);
      const answered = answers.map((span) => [
        span.attributes[SpanAttributes.toolCallId],
        span.attributes[SpanAttributes.approval],
        span.attributes[SpanAttributes.approver],
      ]);
      expect(new Map(answered.map(([id, ...rest]) => [id, rest]))).toEqual(
        new Map([
          ["first", ["approved", "carol"]],
          ["second", ["declined", undefined]],
        ]),
      );
      // One decision per call after the resume: the step's, reused at each tool call.
      const decided = tracing.spans().filter((span) => span.name === SpanNames.authorize);
      expect(decided.map((span) => span.attributes[SpanAttributes.toolCallId]).sort()).toEqual(["first", "second"]);
    });

    test("a step with an allowed call and one needing approval: the interrupt lists only the latter, both run after", async () => {
      const move = { source: join(workspace.dir, "e.md"), destination: join(workspace.dir, "f.md") };
      const { model, tools } = await recordingAgent([
        { name: "write_file", args: { path: join(workspace.dir, "e.md"), content: "x" }, id: "allowed-write" },
        { name: "move_file", args: move, id: "asked-move" },
      ]);
      const agent = createAgent({
        model,
        tools,
        middleware: [hopguardMiddleware({ server: "filesystem" })],
        checkpointer: new MemorySaver(),
      });
      const config = { context: { delegation: asScribe }, configurable: { thread_id: "mixed-step" } };

      const paused = await agent.invoke(ask, config);
      const value = paused.__interrupt__?.[0]?.value as ApprovalInterrupt;
      expect(value.hopguard.calls.map((call) => call.toolCallId)).toEqual(["asked-move"]);
      // As with humanInTheLoopMiddleware, the step waits for the person: nothing of it ran yet.
      expect(recording.executed).toEqual([]);

      await agent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), config);
      expect([...recording.executed].sort()).toEqual(["move_file", "write_file"]);
    });

    test("a resume whose decisions do not match the calls one to one rejects every call", async () => {
      const args = { source: join(workspace.dir, "c.md"), destination: join(workspace.dir, "d.md") };
      const { model, tools } = await recordingAgent([
        { name: "move_file", args, id: "one" },
        { name: "move_file", args, id: "two" },
      ]);
      const agent = createAgent({
        model,
        tools,
        middleware: [hopguardMiddleware({ server: "filesystem" })],
        checkpointer: new MemorySaver(),
      });
      const config = { context: { delegation: asScribe }, configurable: { thread_id: "mismatched" } };

      await agent.invoke(ask, config);
      const resumed = await agent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), config);

      expect(recording.executed).toEqual([]);
      const statuses = [...toolMessages(resumed.messages).values()].map((message) => message.status);
      expect(statuses).toEqual(["error", "error"]);
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
