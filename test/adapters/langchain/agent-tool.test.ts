import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ToolMessage } from "@langchain/core/messages";
import { Command, MemorySaver } from "@langchain/langgraph";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type ApprovalInterrupt,
  agentTool,
  guardTools,
  hopguardMiddleware,
} from "../../../src/adapters/langchain/index.ts";
import {
  createGuard,
  currentDelegation,
  type Delegation,
  InvalidInputError,
  SpanAttributes,
  SpanNames,
} from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing } from "../../support/tracing.ts";
import { planner, researcher, scribe } from "../../support/users.ts";
import { startWorkspace, toolMessages, toolsOffered, type Workspace } from "./support.ts";

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });

let workspace: Workspace;
let asPlanner: Delegation;
afterAll(() => workspace?.close());
beforeAll(async () => {
  workspace = await startWorkspace("agents");
  asPlanner = await guard.forUser(workspace.user).delegate(planner);
});

/** A scribe sub-agent whose model writes `path`, then reports what its tool answered. */
function scribeAgent(path: string) {
  const model = fakeModel()
    .respondWithTools([{ name: "write_file", args: { path, content: "draft" }, id: "scribe-write" }])
    .respond((messages) => new AIMessage(`scribe saw: ${messages.at(-1)?.text}`));
  const agent = createAgent({
    model,
    tools: workspace.tools,
    middleware: [hopguardMiddleware({ server: "filesystem", hideTools: false })],
  });
  return { model, agent };
}

/** An orchestrator whose model hands `task` to its only tool. */
function orchestrator(tool: ReturnType<typeof agentTool>) {
  const model = fakeModel()
    .respondWithTools([{ name: tool.name, args: { task: "write the draft" }, id: "delegate-1" }])
    .respond(new AIMessage("orchestrator done"));
  return createAgent({ model, tools: [tool] });
}

describe("agentTool", () => {
  test("a sub-agent cannot call what its orchestrator may not: the planner hop denies the scribe's write", async () => {
    tracing.reset();
    const path = join(workspace.dir, "via-planner.md");
    const sub = scribeAgent(path);
    const parent = orchestrator(agentTool(sub.agent, { name: "scribe", description: "Writes drafts", agent: scribe }));

    const result = await parent.invoke(
      { messages: [{ role: "user", content: "draft it" }] },
      { context: { delegation: asPlanner } },
    );

    expect(existsSync(path)).toBe(false);
    const answer = toolMessages(result.messages).get("delegate-1");
    expect(answer?.status).not.toBe("error");
    expect(answer?.text).toMatch(/^scribe saw: hopguard refused filesystem\/write_file: denied by agent "planner"/);

    const write = tracing
      .spans()
      .find(
        (span) => span.name === SpanNames.authorize && span.attributes[SpanAttributes.toolCallId] === "scribe-write",
      );
    expect(write?.attributes[SpanAttributes.chain]).toEqual(["alice", "planner", "scribe"]);
    expect(write?.attributes[SpanAttributes.hopEffects]).toEqual(["EFFECT_ALLOW", "EFFECT_DENY", "EFFECT_ALLOW"]);
    expect(write?.attributes[SpanAttributes.deniedBy]).toBe("planner");
  });

  test("the same sub-agent, delegated to by alice directly, may write: the chain is what decides", async () => {
    const path = join(workspace.dir, "via-alice.md");
    const sub = scribeAgent(path);
    const parent = orchestrator(agentTool(sub.agent, { name: "scribe", description: "Writes drafts", agent: scribe }));

    await parent.invoke(
      { messages: [{ role: "user", content: "draft it" }] },
      { context: { delegation: guard.forUser(workspace.user) } },
    );

    expect(existsSync(path)).toBe(true);
  });

  test("a delegation the policy denies (planner to planner) is a refusal, and the sub-agent never runs", async () => {
    const sub = scribeAgent(join(workspace.dir, "never.md"));
    const parent = orchestrator(
      agentTool(sub.agent, {
        name: "second_planner",
        description: "Plans too",
        agent: { id: "planner-2", roles: ["agent", "planner"] },
      }),
    );

    const result = await parent.invoke(
      { messages: [{ role: "user", content: "plan it" }] },
      { context: { delegation: asPlanner } },
    );

    const refused = toolMessages(result.messages).get("delegate-1") as ToolMessage;
    expect(refused.status).toBe("error");
    expect(refused.text).toMatch(/^hopguard refused agent\/planner-2: denied by agent "planner" .*may not delegate/);
    expect(sub.model.callCount).toBe(0);
    expect(result.messages.at(-1)?.text).toBe("orchestrator done");
  });

  test("a sub-agent's call that needs approval pauses the parent's run, and resuming the parent runs it", async () => {
    const source = join(workspace.dir, "nested.md");
    const destination = join(workspace.dir, "nested-moved.md");
    writeFileSync(source, "nested");
    const subModel = fakeModel()
      .respondWithTools([{ name: "move_file", args: { source, destination }, id: "nested-move" }])
      .respond(new AIMessage("moved it"));
    const sub = createAgent({
      model: subModel,
      tools: workspace.tools,
      middleware: [hopguardMiddleware({ server: "filesystem" })],
    });
    const model = fakeModel()
      .respondWithTools([{ name: "scribe", args: { task: "move the file" }, id: "delegate-move" }])
      .respond(new AIMessage("orchestrator done"));
    const parent = createAgent({
      model,
      tools: [agentTool(sub, { name: "scribe", description: "Moves files", agent: scribe })],
      checkpointer: new MemorySaver(),
    });
    const config = { context: { delegation: guard.forUser(workspace.user) }, configurable: { thread_id: "nested" } };

    const paused = await parent.invoke({ messages: [{ role: "user", content: "move it" }] }, config);
    const [pause] = paused.__interrupt__ ?? [];
    expect((pause?.value as ApprovalInterrupt | undefined)?.hopguard.chain).toEqual(["alice", "scribe"]);
    expect(existsSync(source)).toBe(true);

    const resumed = await parent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), config);
    expect(existsSync(destination)).toBe(true);
    expect(toolMessages(resumed.messages).get("delegate-move")?.text).toBe("moved it");
  });

  test("with no chain, the parent gets a refusal and the sub-agent never runs", async () => {
    const sub = scribeAgent(join(workspace.dir, "orphan.md"));
    const tool = agentTool(sub.agent, { name: "scribe", description: "Writes drafts", agent: scribe });

    const text = await tool.invoke({ task: "write" });

    expect(text).toMatch(/^hopguard refused agent\/scribe: .*has no delegation chain/);
    expect(sub.model.callCount).toBe(0);
  });

  test("a malformed sub-agent identity fails when the tool is made, not when it is called", () => {
    const sub = scribeAgent(join(workspace.dir, "malformed.md"));
    expect(() => agentTool(sub.agent, { name: "x", description: "x", agent: { id: "", roles: [] } })).toThrow(
      InvalidInputError,
    );
  });

  test("a function can run a sub-agent of another framework under the extended chain", async () => {
    const seen: { task: string; chain: readonly string[]; ambient: readonly string[] | undefined }[] = [];
    const parent = orchestrator(
      agentTool(
        async ({ task, delegation }) => {
          seen.push({ task, chain: delegation.chain, ambient: currentDelegation()?.chain });
          return { text: `researched: ${task}` };
        },
        { name: "research", description: "Finds things out", agent: researcher },
      ),
    );
    const result = await parent.invoke(
      { messages: [{ role: "user", content: "go" }] },
      { context: { delegation: asPlanner } },
    );
    const chain = [workspace.user.id, "planner", "researcher"];
    expect(seen).toEqual([{ task: "write the draft", chain, ambient: chain }]);
    expect(toolMessages(result.messages).get("delegate-1")?.text).toBe("researched: write the draft");
  });

  test("something that is neither an agent nor a function is rejected when the tool is made", () => {
    expect(() => agentTool({} as never, { name: "x", description: "x", agent: researcher })).toThrow(InvalidInputError);
  });

  test("hopguardMiddleware and guardTools pass an agent tool through: it authorizes itself by delegating", async () => {
    tracing.reset();
    const research = agentTool(async ({ task }) => `done: ${task}`, {
      name: "research",
      description: "Finds things out",
      agent: researcher,
    });
    expect(guardTools([research])[0]).toBe(research);
    const recorder = toolsOffered();
    const model = fakeModel()
      .respondWithTools([{ name: "research", args: { task: "look" }, id: "r-1" }])
      .respond(new AIMessage("ok"));
    const parent = createAgent({
      model,
      tools: [research],
      middleware: [hopguardMiddleware({ server: "filesystem" }), recorder.middleware],
    });

    const result = await parent.invoke(
      { messages: [{ role: "user", content: "go" }] },
      { context: { delegation: asPlanner } },
    );

    expect(recorder.offered[0]).toEqual(["research"]);
    expect(toolMessages(result.messages).get("r-1")?.text).toBe("done: look");
    const delegations = tracing.spans().filter((span) => span.name === SpanNames.delegate);
    expect(delegations.map((span) => span.attributes[SpanAttributes.delegateTo])).toEqual(["researcher"]);
  });
});
