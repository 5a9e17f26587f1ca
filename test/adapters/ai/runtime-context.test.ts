import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateText, type ModelMessage, stepCountIs, type ToolExecutionOptions } from "ai";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { guardTools, hopguardToolApproval } from "../../../src/adapters/ai/index.ts";
import { createGuard, type Delegation, type HopguardWarning, setWarningHandler } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { recordingPdp } from "../../support/recording-pdp.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";
import { researcher } from "../../support/users.ts";
import { type FilesystemFixture, startFilesystem } from "./filesystem.ts";
import { requestsTo, scriptedModel, toolResultsSeen } from "./scripted-model.ts";

const tracing = memoryTracing();
const pdp = recordingPdp(sharedPdpClient());
const guard = createGuard({ client: pdp, tracer: tracing.tracer });
let fs: FilesystemFixture;
let reader: Delegation;
const warnings: HopguardWarning[] = [];

beforeAll(async () => {
  fs = await startFilesystem();
  reader = await guard.forUser(fs.alice).delegate(researcher);
});
afterAll(() => fs.close());
afterEach(() => setWarningHandler(undefined));

const toolChecks = () => pdp.checks.filter((check) => check.resources.some((r) => r.resource.kind.startsWith("mcp::")));
function reset(): void {
  pdp.checks.length = 0;
  tracing.reset();
  warnings.length = 0;
  setWarningHandler((warning) => warnings.push(warning));
}
const readCall = (id: string, path: string) => ({ calls: [{ id, tool: "read_text_file", input: { path } }] });
const authorizeSpans = () => tracing.spans().filter((span) => span.name === "hopguard.authorize");

describe("AI SDK 7: the chain in runtimeContext reaches guarded tools through hopguardToolApproval", () => {
  test("an allowed read runs end to end, one PDP round and one span for the call", async () => {
    const path = join(fs.workspace, "context.md");
    writeFileSync(path, "from runtimeContext");
    reset();
    const model = scriptedModel(readCall("c1", path), { text: "ok" });

    const result = await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesystem" }),
      toolApproval: hopguardToolApproval({ server: "filesystem" }),
      runtimeContext: { delegation: reader },
      stopWhen: stepCountIs(3),
      prompt: "read",
    });

    expect(result.text).toBe("ok");
    expect(JSON.stringify(toolResultsSeen(requestsTo(model)[1]).get("c1"))).toContain("from runtimeContext");
    // One round: one check per hop (alice, researcher) — not two rounds, one at approval and one at execute.
    expect(toolChecks()).toHaveLength(2);
    expect(pdp.argumentsSeen()).toEqual([{ path }, { path }]);
    expect(onlySpan(tracing.spans(), "hopguard.authorize").attributes).toMatchObject({
      "hopguard.decision": "allow",
      "hopguard.chain": ["alice", "researcher"],
      "gen_ai.tool.call.id": "c1",
    });
    expect(warnings).toEqual([]);
  });

  test("a denied call is refused at the approval step and never executes", async () => {
    const outside = join(fs.workspace, "..", "outside.md");
    reset();
    const model = scriptedModel(readCall("c1", outside), { text: "ok" });
    await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesystem" }),
      toolApproval: hopguardToolApproval({ server: "filesystem" }),
      runtimeContext: { delegation: reader },
      stopWhen: stepCountIs(3),
      prompt: "read",
    });
    expect(toolResultsSeen(requestsTo(model)[1]).get("c1")).toMatchObject({ type: "execution-denied" });
    expect(onlySpan(tracing.spans(), "hopguard.authorize").attributes["hopguard.decision"]).toBe("deny");
  });

  test("an input changed between the approval step and execute is asked again, and refused", async () => {
    const allowed = join(fs.workspace, "approved.md");
    const secret = join(fs.workspace, "..", "secret.md");
    writeFileSync(allowed, "fine");
    reset();
    const tools = guardTools(fs.tools, { server: "filesystem" });
    const messages: ModelMessage[] = [{ role: "user", content: "read" }];
    const approve = hopguardToolApproval({ server: "filesystem" });
    const status = await approve({
      toolCall: { toolName: "read_text_file", toolCallId: "c1", input: { path: allowed } },
      tools,
      runtimeContext: { delegation: reader },
      messages,
    });
    expect(status).toBe("not-applicable");

    const options = { toolCallId: "c1", messages, context: undefined } as unknown as ToolExecutionOptions<unknown>;
    const output = await tools.read_text_file?.execute?.({ path: secret }, options);

    expect(output).toMatch(/^hopguard refused filesystem\/read_text_file: denied by user "alice"/);
    expect(pdp.argumentsSeen()).toEqual([{ path: allowed }, { path: allowed }, { path: secret }, { path: secret }]);
    expect(authorizeSpans().map((span) => span.attributes["hopguard.decision"])).toEqual(["allow", "deny"]);
  });

  test("an allow is used once: a second execute with the same call id asks the PDP again", async () => {
    const path = join(fs.workspace, "once.md");
    writeFileSync(path, "once");
    reset();
    const tools = guardTools(fs.tools, { server: "filesystem", delegation: reader });
    const messages: ModelMessage[] = [{ role: "user", content: "read" }];
    await hopguardToolApproval({ server: "filesystem" })({
      toolCall: { toolName: "read_text_file", toolCallId: "c1", input: { path } },
      tools,
      runtimeContext: { delegation: reader },
      messages,
    });
    const options = { toolCallId: "c1", messages } as unknown as ToolExecutionOptions<unknown>;
    await tools.read_text_file?.execute?.({ path }, options);
    expect(toolChecks()).toHaveLength(2);
    await tools.read_text_file?.execute?.({ path }, options);
    expect(toolChecks()).toHaveLength(4);
    // Another step's messages never find this step's answer.
    await hopguardToolApproval({ server: "filesystem" })({
      toolCall: { toolName: "read_text_file", toolCallId: "c2", input: { path } },
      tools,
      runtimeContext: { delegation: reader },
      messages,
    });
    await tools.read_text_file?.execute?.({ path }, { ...options, toolCallId: "c2", messages: [] });
    expect(toolChecks()).toHaveLength(8);
  });
});

describe("no chain anywhere", () => {
  test("guardTools without hopguardToolApproval refuses, says where it looked, and warns once", async () => {
    reset();
    const path = join(fs.workspace, "nowhere.md");
    writeFileSync(path, "x");
    const model = scriptedModel(readCall("c1", path), readCall("c2", path), { text: "ok" });
    await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesystem", tracer: tracing.tracer }),
      runtimeContext: { delegation: reader },
      stopWhen: stepCountIs(4),
      prompt: "read",
    });

    const refusal = toolResultsSeen(requestsTo(model)[1]).get("c1");
    expect(refusal).toEqual({
      type: "text",
      value:
        "hopguard refused filesystem/read_text_file: tool filesystem/read_text_file has no delegation chain: " +
        'not in options.delegation, not in toolsContext["read_text_file"].delegation, not in ' +
        "runtimeContext.delegation (tools see it only through hopguardToolApproval) and no guard.runAs in effect",
    });
    expect(toolResultsSeen(requestsTo(model)[2]).get("c2")).toMatchObject({ type: "text" });
    expect(pdp.checks).toEqual([]);
    expect(authorizeSpans().map((span) => span.attributes["error.type"])).toEqual(["no_delegation", "no_delegation"]);
    expect(warnings).toEqual([{ code: "no_delegation", message: expect.stringMatching(/^hopguard refused tool/) }]);
  });

  test("hopguardToolApproval's refusal names runtimeContext and toolsContext", async () => {
    reset();
    const model = scriptedModel(readCall("c1", join(fs.workspace, "a.md")), { text: "ok" });
    await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesystem" }),
      toolApproval: hopguardToolApproval({ server: "filesystem" }),
      stopWhen: stepCountIs(3),
      prompt: "read",
    });
    expect(toolResultsSeen(requestsTo(model)[1]).get("c1")).toEqual({
      type: "execution-denied",
      reason: expect.stringContaining(
        'not in options.delegation, not in runtimeContext.delegation, not in toolsContext["read_text_file"].delegation ' +
          "and no guard.runAs in effect",
      ),
    });
    expect(warnings).toHaveLength(1);
  });

  test("the default handler is process.emitWarning, once per process", async () => {
    setWarningHandler(undefined);
    const emitted: string[] = [];
    const listener = (warning: Error) => emitted.push(warning.name);
    process.on("warning", listener);
    try {
      const tools = guardTools(fs.tools, { server: "filesystem" });
      const options = { toolCallId: "c1", messages: [] } as unknown as ToolExecutionOptions<unknown>;
      await tools.read_text_file?.execute?.({ path: "a" }, options);
      await tools.read_text_file?.execute?.({ path: "b" }, options);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", listener);
    }
    expect(emitted).toEqual(["HopguardWarning"]);
  });
});

describe("a server name with no Cerbos policy", () => {
  test("a call says so instead of blaming a hop, and warns once for the kind", async () => {
    reset();
    const path = join(fs.workspace, "typo.md");
    writeFileSync(path, "x");
    const model = scriptedModel(readCall("c1", path), { text: "ok" });
    await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesytem", delegation: reader }),
      stopWhen: stepCountIs(3),
      prompt: "read",
    });
    expect(toolResultsSeen(requestsTo(model)[1]).get("c1")).toEqual({
      type: "text",
      value:
        "hopguard refused filesytem/read_text_file: no Cerbos policy for resource kind mcp::filesytem: " +
        "every hop was denied by default (is the server name right?)",
    });
    expect(warnings).toEqual([{ code: "no_policy", message: expect.stringContaining("mcp::filesytem") }]);
    // needsApproval's deny stands at execute: one round.
    expect(toolChecks()).toHaveLength(2);
    expect(onlySpan(tracing.spans(), "hopguard.authorize").attributes["hopguard.hop.policies"]).toEqual([
      "NO_MATCH",
      "NO_MATCH",
    ]);
  });
});
