import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GRPC } from "@cerbos/grpc";
import { generateText, type ModelMessage, stepCountIs, streamText } from "ai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { hopguardToolApproval } from "../../../src/adapters/ai/index.ts";
import { createGuard, type Delegation, runAs } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { researcher, scribe } from "../../support/users.ts";
import { type FilesystemFixture, startFilesystem } from "./filesystem.ts";
import { forgedWriteApproval, requestsTo, scriptedModel, toolResultsSeen } from "./scripted-model.ts";

// The real server's tools, unguarded: here toolApproval alone decides what runs.
const guard = createGuard({ client: sharedPdpClient() });
const toolApproval = hopguardToolApproval({ server: "filesystem" });
let fs: FilesystemFixture;
let reader: Delegation;
let writer: Delegation;

beforeAll(async () => {
  fs = await startFilesystem();
  reader = await guard.forUser(fs.alice).delegate(researcher);
  writer = await guard.forUser(fs.alice).delegate(scribe);
});
afterAll(() => fs.close());

const writeCall = (id: string, path: string) => ({
  calls: [{ id, tool: "write_file", input: { path, content: "x" } }],
});

describe("hopguardToolApproval", () => {
  test("an allowed call runs with no approval parts; recordApprovals records hopguard's reason", async () => {
    const path = join(fs.workspace, "allowed.md");
    const quiet = await runAs(writer, () =>
      generateText({
        model: scriptedModel(writeCall("c1", path), { text: "ok" }),
        tools: fs.tools,
        toolApproval,
        stopWhen: stepCountIs(3),
        prompt: "a",
      }),
    );
    expect(readFileSync(path, "utf8")).toBe("x");
    expect(quiet.steps[0]?.content.some((part) => part.type.startsWith("tool-approval"))).toBe(false);

    const recorded = await runAs(writer, () =>
      generateText({
        model: scriptedModel(writeCall("c2", path), { text: "ok" }),
        tools: fs.tools,
        toolApproval: hopguardToolApproval({ server: "filesystem", recordApprovals: true }),
        stopWhen: stepCountIs(3),
        prompt: "a",
      }),
    );
    expect(recorded.steps[0]?.content.find((part) => part.type === "tool-approval-response")).toMatchObject({
      approved: true,
      reason: expect.stringMatching(/^allowed: every hop of alice → scribe/),
    });
  });

  test("a deny becomes execution-denied with the refusal; the tool does not run and the loop goes on", async () => {
    const path = join(fs.workspace, "denied.md");
    const model = scriptedModel(writeCall("c1", path), { text: "understood" });

    const result = await runAs(reader, () =>
      generateText({ model, tools: fs.tools, toolApproval, stopWhen: stepCountIs(3), prompt: "d" }),
    );

    expect(existsSync(path)).toBe(false);
    expect(toolResultsSeen(requestsTo(model)[1]).get("c1")).toEqual({
      type: "execution-denied",
      reason: expect.stringMatching(/^hopguard refused filesystem\/write_file: denied by agent "researcher"/),
    });
    expect(result.text).toBe("understood");
  });

  test("streamText is decided the same way", async () => {
    const path = join(fs.workspace, "streamed.md");
    const model = scriptedModel(writeCall("c1", path), { text: "done" });
    const result = runAs(reader, () =>
      streamText({ model, tools: fs.tools, toolApproval, stopWhen: stepCountIs(3), prompt: "s" }),
    );
    const denied = [];
    for await (const part of result.fullStream) if (part.type === "tool-output-denied") denied.push(part.toolCallId);

    expect(denied).toEqual(["c1"]);
    expect(existsSync(path)).toBe(false);
  });

  test("an approval output stops the run with a user-approval request; the approved move then runs", async () => {
    const source = join(fs.workspace, "draft.md");
    const destination = join(fs.workspace, "final.md");
    writeFileSync(source, "draft");
    const prompt: ModelMessage[] = [{ role: "user", content: "publish" }];
    const first = await runAs(writer, () =>
      generateText({
        model: scriptedModel({ calls: [{ id: "mv", tool: "move_file", input: { source, destination } }] }),
        tools: fs.tools,
        toolApproval,
        messages: prompt,
      }),
    );

    const request = first.content.find((part) => part.type === "tool-approval-request");
    expect(request).toMatchObject({
      reason: "moving files changes what others rely on",
      toolCall: { toolCallId: "mv" },
    });
    expect(existsSync(source) && !existsSync(destination)).toBe(true);

    const approvalId = request?.type === "tool-approval-request" ? request.approvalId : "";
    await runAs(writer, () =>
      generateText({
        model: scriptedModel({ text: "moved" }),
        tools: fs.tools,
        toolApproval,
        messages: [
          ...prompt,
          ...first.response.messages,
          { role: "tool", content: [{ type: "tool-approval-response", approvalId, approved: true }] },
        ],
      }),
    );
    expect(readFileSync(destination, "utf8")).toBe("draft");
  });

  test("an approval never widens a deny: the SDK asks again and the denied write does not run", async () => {
    const path = join(fs.workspace, "forged.md");
    const model = scriptedModel({ text: "ok" });
    const messages: ModelMessage[] = forgedWriteApproval(path);

    await runAs(reader, () => generateText({ model, tools: fs.tools, toolApproval, messages }));

    expect(existsSync(path)).toBe(false);
    expect(toolResultsSeen(requestsTo(model)[0]).get("w")).toMatchObject({
      type: "execution-denied",
      reason: expect.stringMatching(/denied by agent "researcher"/),
    });
  });

  test("the chain comes from the option, then runtimeContext, then runAs", async () => {
    const path = join(fs.workspace, "context.md");
    const run = (options: Parameters<typeof hopguardToolApproval>[0], runtimeContext: Record<string, unknown>) =>
      runAs(writer, () =>
        generateText({
          model: scriptedModel(writeCall("c1", path), { text: "ok" }),
          tools: fs.tools,
          toolApproval: hopguardToolApproval(options),
          runtimeContext,
          stopWhen: stepCountIs(3),
          prompt: "c",
        }),
      );

    await run({ server: "filesystem" }, { delegation: reader });
    expect(existsSync(path)).toBe(false);
    await run({ server: "filesystem", delegation: reader }, { delegation: writer });
    expect(existsSync(path)).toBe(false);
    await run({ server: "filesystem" }, {});
    expect(existsSync(path)).toBe(true);
  });

  test("no chain, an unreachable PDP or a broken resolveTool is a denial, never a crashed run", async () => {
    const path = join(fs.workspace, "failing.md");
    const unreachable = new GRPC("127.0.0.1:9", { tls: false });
    try {
      const offline = createGuard({ client: unreachable, timeoutMs: 500 }).forUser(fs.alice);
      const approvals = [
        toolApproval,
        hopguardToolApproval({ server: "filesystem", delegation: offline }),
        hopguardToolApproval({
          resolveTool: () => {
            throw new Error("unmapped");
          },
          delegation: writer,
        }),
      ];
      const reasons = [];
      for (const approval of approvals) {
        const model = scriptedModel(writeCall("c1", path), { text: "ok" });
        const result = await generateText({
          model,
          tools: fs.tools,
          toolApproval: approval,
          stopWhen: stepCountIs(3),
          prompt: "f",
        });
        expect(result.text).toBe("ok");
        reasons.push(toolResultsSeen(requestsTo(model)[1]).get("c1"));
      }
      expect(existsSync(path)).toBe(false);
      expect(reasons).toEqual([
        { type: "execution-denied", reason: expect.stringMatching(/no delegation chain/) },
        { type: "execution-denied", reason: expect.stringMatching(/: PDP/) },
        { type: "execution-denied", reason: expect.stringMatching(/authorization failed: unmapped/) },
      ]);
    } finally {
      unreachable.close();
    }
  });
});
