import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GRPC } from "@cerbos/grpc";
import { ToolMessage } from "@langchain/core/messages";
import { StructuredTool } from "@langchain/core/tools";
import { Command, MemorySaver } from "@langchain/langgraph";
import { loadMcpTools } from "@langchain/mcp-adapters";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { guardTools } from "../../../src/adapters/langchain/index.ts";
import {
  createGuard,
  type Delegation,
  InvalidInputError,
  NoDelegationError,
  runAs,
  SpanAttributes,
  SpanNames,
  ToolCallDeniedError,
} from "../../../src/index.ts";
import { startRecordingServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing } from "../../support/tracing.ts";
import { researcher, scribe } from "../../support/users.ts";
import { startWorkspace, toolMessages, type Workspace } from "./support.ts";

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
const recording = await startRecordingServer();
afterAll(() => recording.close());

let workspace: Workspace;
let asResearcher: Delegation;
let asScribe: Delegation;
afterAll(() => workspace?.close());
beforeAll(async () => {
  workspace = await startWorkspace("tools");
  writeFileSync(join(workspace.dir, "notes.md"), "the launch moved to Thursday");
  asResearcher = await guard.forUser(workspace.user).delegate(researcher);
  asScribe = await guard.forUser(workspace.user).delegate(scribe);
});

async function recordingTools(options: Parameters<typeof guardTools>[1] = { server: "filesystem" }) {
  recording.executed.length = 0;
  return guardTools(await loadMcpTools("filesystem", recording.client), options);
}

function toolCall(name: string, args: Record<string, unknown>, id = `call-${name}`) {
  return { type: "tool_call" as const, name, args, id };
}

describe("guardTools", () => {
  test("keeps name, description, schema, responseFormat, returnDirect and metadata; only execution changes", () => {
    const guarded = guardTools(workspace.tools, { server: "filesystem" });
    expect(guarded).toHaveLength(workspace.tools.length);
    guarded.forEach((tool, index) => {
      const original = workspace.tools[index] as StructuredTool;
      expect(tool).toBeInstanceOf(StructuredTool);
      expect(tool).not.toBe(original);
      expect(tool.name).toBe(original.name);
      expect(tool.description).toBe(original.description);
      expect(tool.schema).toBe(original.schema);
      expect(tool.responseFormat).toBe("content_and_artifact");
      expect(tool.returnDirect).toBe(original.returnDirect);
      expect(tool.metadata).toEqual(original.metadata);
    });
  });

  test("in an agent, an allowed read_file returns the real file's content in its ToolMessage", async () => {
    const path = join(workspace.dir, "notes.md");
    const model = fakeModel()
      .respondWithTools([{ name: "read_file", args: { path }, id: "read-1" }])
      .respond(new AIMessage("Thursday"));
    const agent = createAgent({ model, tools: guardTools(workspace.tools, { server: "filesystem" }) });

    const result = await agent.invoke(
      { messages: [{ role: "user", content: "When is the launch?" }] },
      { context: { delegation: asResearcher } },
    );

    const read = toolMessages(result.messages).get("read-1");
    expect(read?.status).not.toBe("error");
    expect(read?.text).toContain("the launch moved to Thursday");
  });

  test("a denied write_file never creates the file; the agent reads why and carries on", async () => {
    const path = join(workspace.dir, "denied.md");
    const model = fakeModel()
      .respondWithTools([{ name: "write_file", args: { path, content: "x" }, id: "write-1" }])
      .respond(new AIMessage("I may not write files."));
    const agent = createAgent({ model, tools: guardTools(workspace.tools, { server: "filesystem" }) });

    const result = await agent.invoke(
      { messages: [{ role: "user", content: "Write a file" }] },
      { context: { delegation: asResearcher } },
    );

    expect(existsSync(path)).toBe(false);
    const refused = toolMessages(result.messages).get("write-1");
    expect(refused?.status).toBe("error");
    expect(refused?.text).toMatch(/^hopguard refused filesystem\/write_file: denied by agent "researcher"/);
    expect(result.messages.at(-1)?.text).toBe("I may not write files.");
    expect(model.callCount).toBe(2);
  });

  test("two calls in one model step are authorized each on its own, each with its own span", async () => {
    tracing.reset();
    const notes = join(workspace.dir, "notes.md");
    const path = join(workspace.dir, "also-denied.md");
    const model = fakeModel()
      .respondWithTools([
        { name: "read_file", args: { path: notes }, id: "both-read" },
        { name: "write_file", args: { path, content: "x" }, id: "both-write" },
      ])
      .respond(new AIMessage("done"));
    const agent = createAgent({ model, tools: guardTools(workspace.tools, { server: "filesystem" }) });

    const result = await runAs(asResearcher, () => agent.invoke({ messages: [{ role: "user", content: "go" }] }));

    const messages = toolMessages(result.messages);
    expect(messages.get("both-read")?.text).toContain("the launch moved to Thursday");
    expect(messages.get("both-write")?.status).toBe("error");
    expect(existsSync(path)).toBe(false);

    const spans = tracing.spans().filter((span) => span.name === SpanNames.authorize);
    const byCall = new Map(spans.map((span) => [span.attributes[SpanAttributes.toolCallId], span.attributes]));
    expect(byCall.get("both-read")?.[SpanAttributes.decision]).toBe("allow");
    expect(byCall.get("both-write")?.[SpanAttributes.decision]).toBe("deny");
    expect(byCall.get("both-write")?.[SpanAttributes.deniedBy]).toBe("researcher");
    expect(byCall.get("both-write")?.[SpanAttributes.chain]).toEqual(["alice", "researcher"]);
  });

  test("with no chain anywhere, a call is refused and the tool never runs", async () => {
    const [read] = await recordingTools();

    const message = await read?.invoke(toolCall("read_file", { path: "/workspace/alice/a.md" }));
    const text = await read?.invoke({ path: "/workspace/alice/a.md" });

    expect(message).toBeInstanceOf(ToolMessage);
    expect((message as ToolMessage).status).toBe("error");
    expect((message as ToolMessage).tool_call_id).toBe("call-read_file");
    expect((message as ToolMessage).text).toContain("has no delegation chain");
    expect(text).toMatch(/^hopguard refused filesystem\/read_file: .*no delegation chain/);
    expect(recording.executed).toEqual([]);
  });

  test("the chain comes from the option first, then the runtime context, then runAs", async () => {
    const alicesFile = { path: join(workspace.dir, "a.md"), content: "x" };
    const tools = await recordingTools();
    const write = tools.find((tool) => tool.name === "write_file");

    // The scribe may write, the researcher may not: whichever chain acts shows in what ran.
    await runAs(asResearcher, () =>
      write?.invoke(toolCall("write_file", alicesFile), { context: { delegation: asScribe } }),
    );
    expect(recording.executed).toEqual(["write_file"]);

    await runAs(asScribe, () => write?.invoke(toolCall("write_file", alicesFile)));
    expect(recording.executed).toEqual(["write_file", "write_file"]);

    const [, explicit] = await recordingTools({ server: "filesystem", delegation: asResearcher });
    await explicit?.invoke(toolCall("write_file", alicesFile), { context: { delegation: asScribe } });
    expect(recording.executed).toEqual([]);
  });

  test('onDenied: "throw" throws ToolCallDeniedError, or the HopguardError that stopped the check', async () => {
    const tools = await recordingTools({ server: "filesystem", onDenied: "throw" });
    const write = tools.find((tool) => tool.name === "write_file");
    const call = toolCall("write_file", { path: join(workspace.dir, "a.md"), content: "x" });

    const denied = await write
      ?.invoke(call, { context: { delegation: asResearcher } })
      .catch((error: unknown) => error);
    const noChain = await write?.invoke(call).catch((error: unknown) => error);

    expect(ToolCallDeniedError.isInstance(denied)).toBe(true);
    expect((denied as ToolCallDeniedError).decision.deniedBy).toBe("researcher");
    expect(NoDelegationError.isInstance(noChain)).toBe(true);
    expect(recording.executed).toEqual([]);
  });

  test("a PDP that cannot answer refuses the call", async () => {
    const unreachable = new GRPC("127.0.0.1:1", { tls: false });
    try {
      const offline = createGuard({ client: unreachable, timeoutMs: 500 }).forUser(workspace.user);
      const [read] = await recordingTools({ server: "filesystem", delegation: offline });

      const message = (await read?.invoke(toolCall("read_file", { path: join(workspace.dir, "a.md") }))) as ToolMessage;

      expect(message.status).toBe("error");
      expect(message.text).toMatch(/^hopguard refused filesystem\/read_file: /);
      expect(recording.executed).toEqual([]);
    } finally {
      unreachable.close();
    }
  });

  test("a call that needs approval is refused when nothing can pause for a person", async () => {
    const tools = await recordingTools({ server: "filesystem", delegation: asScribe });
    const move = tools.find((tool) => tool.name === "move_file");
    const args = { source: join(workspace.dir, "a.md"), destination: join(workspace.dir, "b.md") };

    const message = (await move?.invoke(toolCall("move_file", args))) as ToolMessage;

    expect(message.status).toBe("error");
    expect(message.text).toContain("needs a person's approval");
    expect(recording.executed).toEqual([]);
  });

  test("names prefixed by @langchain/mcp-adapters are checked as their server and tool", async () => {
    recording.executed.length = 0;
    tracing.reset();
    const client = recording.client;
    const prefixed = await loadMcpTools("filesystem", client, { prefixToolNameWithServerName: true });
    const both = await loadMcpTools("filesystem", client, {
      prefixToolNameWithServerName: true,
      additionalToolNamePrefix: "mcp",
    });
    const args = { path: join(workspace.dir, "a.md") };

    const [byName] = guardTools(prefixed, { delegation: asResearcher });
    const [byServer] = guardTools(both, { server: "filesystem", delegation: asResearcher });
    expect(byName?.name).toBe("filesystem__read_file");
    expect(byServer?.name).toBe("mcp__filesystem__read_file");
    await byName?.invoke(toolCall(byName.name, args, "by-name"));
    await byServer?.invoke(toolCall(byServer.name, args, "by-server"));

    expect(recording.executed).toEqual(["read_file", "read_file"]);
    for (const span of tracing.spans().filter((span) => span.name === SpanNames.authorize)) {
      expect(span.attributes[SpanAttributes.server]).toBe("filesystem");
      expect(span.attributes[SpanAttributes.toolName]).toBe("read_file");
    }
    expect(tracing.spans().filter((span) => span.name === SpanNames.authorize)).toHaveLength(2);
    expect(() => guardTools(workspace.tools)).toThrow(InvalidInputError);
  });

  test("in an agent with a checkpointer, a call needing approval pauses the run and runs once approved", async () => {
    const source = join(workspace.dir, "to-move.md");
    const destination = join(workspace.dir, "moved.md");
    writeFileSync(source, "move me");
    const model = fakeModel()
      .respondWithTools([{ name: "move_file", args: { source, destination }, id: "move-1" }])
      .respond(new AIMessage("moved"));
    const agent = createAgent({
      model,
      tools: guardTools(workspace.tools, { server: "filesystem" }),
      checkpointer: new MemorySaver(),
    });
    const config = { context: { delegation: asScribe }, configurable: { thread_id: "guard-tools-move" } };

    const paused = await agent.invoke({ messages: [{ role: "user", content: "move it" }] }, config);
    expect(paused.__interrupt__).toHaveLength(1);
    expect(existsSync(source)).toBe(true);

    await agent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), config);
    expect(existsSync(source)).toBe(false);
    expect(existsSync(destination)).toBe(true);
  });
});
