import { existsSync } from "node:fs";
import { join } from "node:path";
import { generateText, stepCountIs, ToolLoopAgent } from "ai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type AgentRequest, agentTool, guardTools, hopguardToolApproval } from "../../../src/adapters/ai/index.ts";
import { createGuard, currentDelegation, runAs } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { planner, researcher, scribe } from "../../support/users.ts";
import { type FilesystemFixture, startFilesystem } from "./filesystem.ts";
import { requestsTo, scriptedModel, toolResultsSeen } from "./scripted-model.ts";

const guard = createGuard({ client: sharedPdpClient() });
let fs: FilesystemFixture;

beforeAll(async () => {
  fs = await startFilesystem();
});
afterAll(() => fs.close());

/** A parent model that hands `prompt` to the `delegate` tool, then answers with what came back. */
const handOver = (prompt: string) =>
  scriptedModel({ calls: [{ id: "d1", tool: "delegate", input: { prompt } }] }, { text: "parent done" });

describe("agentTool", () => {
  test("a sub-agent cannot call what its orchestrator may not, though on its own it could", async () => {
    const attempt = async (parentDelegation: Awaited<ReturnType<typeof guard.forUser>>, file: string) => {
      const path = join(fs.workspace, file);
      const workerModel = scriptedModel(
        { calls: [{ id: "w1", tool: "write_file", input: { path, content: "x" } }] },
        { text: "worker finished" },
      );
      const worker = new ToolLoopAgent({ model: workerModel, tools: guardTools(fs.tools, { server: "filesystem" }) });
      const parentModel = handOver("write the report");
      const parent = await runAs(parentDelegation, () =>
        generateText({
          model: parentModel,
          tools: { delegate: agentTool(worker, { description: "writes files", agent: scribe }) },
          // The parent's own policy: an agent tool authorizes itself, so it is not judged as a filesystem tool.
          toolApproval: hopguardToolApproval({ server: "filesystem" }),
          stopWhen: stepCountIs(3),
          prompt: "go",
        }),
      );
      expect(parent.text).toBe("parent done");
      expect(toolResultsSeen(requestsTo(parentModel)[1]).get("d1")).toEqual({ type: "text", value: "worker finished" });
      return { written: existsSync(path), workerSaw: toolResultsSeen(requestsTo(workerModel)[1]).get("w1") };
    };

    const user = guard.forUser(fs.alice);
    const underPlanner = await attempt(await user.delegate(planner), "via-planner.md");
    expect(underPlanner.written).toBe(false);
    expect(underPlanner.workerSaw).toMatchObject({
      value: expect.stringMatching(
        /^hopguard refused filesystem\/write_file: denied by agent "planner" \(hop 1 of alice → planner → scribe\)/,
      ),
    });

    const direct = await attempt(user, "direct.md");
    expect(direct.written).toBe(true);
  });

  test("a delegation the policy denies (planner to planner) is a refusal, and the agent never runs", async () => {
    const workerModel = scriptedModel({ text: "never" });
    const worker = new ToolLoopAgent({
      model: workerModel,
      toolApproval: hopguardToolApproval({ server: "filesystem" }),
    });
    const parentModel = handOver("plan it");
    const orchestrator = await guard.forUser(fs.alice).delegate(planner);

    await generateText({
      model: parentModel,
      tools: {
        delegate: agentTool(worker, {
          description: "plans",
          agent: { id: "planner-2", roles: ["agent", "planner"] },
          delegation: orchestrator,
        }),
      },
      stopWhen: stepCountIs(3),
      prompt: "go",
    });

    expect(requestsTo(workerModel)).toHaveLength(0);
    expect(toolResultsSeen(requestsTo(parentModel)[1]).get("d1")).toMatchObject({
      value: expect.stringMatching(/^hopguard refused delegating to "planner-2": denied by agent "planner"/),
    });
  });

  test("with no chain, the agent never runs and the parent model reads why", async () => {
    const workerModel = scriptedModel({ text: "never" });
    const parentModel = handOver("anything");

    await generateText({
      model: parentModel,
      tools: {
        delegate: agentTool(new ToolLoopAgent({ model: workerModel }), { description: "d", agent: researcher }),
      },
      stopWhen: stepCountIs(3),
      prompt: "go",
    });

    expect(requestsTo(workerModel)).toHaveLength(0);
    expect(toolResultsSeen(requestsTo(parentModel)[1]).get("d1")).toMatchObject({
      value: expect.stringMatching(/^hopguard refused delegating to "researcher": .*no delegation chain/),
    });
  });

  test("a function agent gets the child chain, also as the ambient one, and its text is the result", async () => {
    const seen: { request?: AgentRequest; ambient?: unknown } = {};
    const research = agentTool(
      async (request: AgentRequest) => {
        seen.request = request;
        seen.ambient = currentDelegation();
        return { text: `researched: ${request.prompt}` };
      },
      { description: "researches", agent: researcher },
    );
    const parentModel = handOver("find the notes");

    await runAs(await guard.forUser(fs.alice).delegate(planner), () =>
      generateText({ model: parentModel, tools: { delegate: research }, stopWhen: stepCountIs(3), prompt: "go" }),
    );

    expect(seen.request?.delegation.chain).toEqual(["alice", "planner", "researcher"]);
    expect(seen.ambient).toBe(seen.request?.delegation);
    expect(seen.request?.prompt).toBe("find the notes");
    expect(toolResultsSeen(requestsTo(parentModel)[1]).get("d1")).toEqual({
      type: "text",
      value: "researched: find the notes",
    });
  });
});
