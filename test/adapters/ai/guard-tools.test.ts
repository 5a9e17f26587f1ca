import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GRPC } from "@cerbos/grpc";
import { generateText, type ModelMessage, stepCountIs, streamText, type Telemetry, tool } from "ai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { guardTools } from "../../../src/adapters/ai/index.ts";
import { createGuard, type Delegation, runAs, ToolCallDeniedError } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { memoryTracing } from "../../support/tracing.ts";
import { researcher, scribe } from "../../support/users.ts";
import { type FilesystemFixture, startFilesystem } from "./filesystem.ts";
import { forgedWriteApproval, requestsTo, scriptedModel, toolResultsSeen } from "./scripted-model.ts";

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
let fs: FilesystemFixture;
let reader: Delegation;
let writer: Delegation;

beforeAll(async () => {
  fs = await startFilesystem();
  reader = await guard.forUser(fs.alice).delegate(researcher);
  writer = await guard.forUser(fs.alice).delegate(scribe);
});
afterAll(() => fs.close());

const refusedWrite = /^hopguard refused filesystem\/write_file: denied by agent "researcher"/;

describe("guardTools over @ai-sdk/mcp tools of the real filesystem server", () => {
  test("an allowed read returns the file's real content, to the app and to the model", async () => {
    const path = join(fs.workspace, "notes.md");
    writeFileSync(path, "remember the milk");
    const model = scriptedModel({ calls: [{ id: "c1", tool: "read_text_file", input: { path } }] }, { text: "ok" });

    const result = await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        stopWhen: stepCountIs(3),
        prompt: "read",
      }),
    );

    expect(result.text).toBe("ok");
    expect(JSON.stringify(result.steps[0]?.toolResults[0]?.output)).toContain("remember the milk");
    expect(toolResultsSeen(requestsTo(model)[1]).get("c1")).toEqual({
      type: "content",
      value: [{ type: "text", text: "remember the milk" }],
    });
  });

  test("a denied write_file never creates the file; the model reads the refusal and the loop goes on", async () => {
    const path = join(fs.workspace, "denied.md");
    const model = scriptedModel(
      { calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] },
      { text: "could not" },
    );

    const result = await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        stopWhen: stepCountIs(3),
        prompt: "w",
      }),
    );

    expect(existsSync(path)).toBe(false);
    expect(result.steps[0]?.toolResults[0]?.output).toMatch(refusedWrite);
    const seen = toolResultsSeen(requestsTo(model)[1]).get("c1");
    expect(seen).toMatchObject({ type: "text", value: expect.stringMatching(refusedWrite) });
    expect(result.text).toBe("could not");
  });

  test("two parallel calls in one step are each authorized on their own", async () => {
    const readable = join(fs.workspace, "parallel.md");
    const unwritable = join(fs.workspace, "parallel-denied.md");
    writeFileSync(readable, "parallel content");
    tracing.reset();
    const model = scriptedModel(
      {
        calls: [
          { id: "read", tool: "read_text_file", input: { path: readable } },
          { id: "write", tool: "write_file", input: { path: unwritable, content: "x" } },
        ],
      },
      { text: "done" },
    );

    await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        stopWhen: stepCountIs(3),
        prompt: "p",
      }),
    );

    const seen = toolResultsSeen(requestsTo(model)[1]);
    expect(JSON.stringify(seen.get("read"))).toContain("parallel content");
    expect(seen.get("write")).toMatchObject({ type: "text", value: expect.stringMatching(refusedWrite) });
    expect(existsSync(unwritable)).toBe(false);
    const decisions = tracing
      .spans()
      .filter((span) => span.name === "hopguard.authorize")
      .map((span) => `${span.attributes["gen_ai.tool.call.id"]}:${span.attributes["hopguard.decision"]}`);
    // needsApproval asks too, so each call is decided twice — always the same way.
    expect(new Set(decisions)).toEqual(new Set(["read:allow", "write:deny"]));
  });

  test("streamText is guarded like generateText", async () => {
    const readable = join(fs.workspace, "streamed.md");
    const unwritable = join(fs.workspace, "streamed-denied.md");
    writeFileSync(readable, "streamed content");
    const model = scriptedModel(
      {
        calls: [
          { id: "read", tool: "read_text_file", input: { path: readable } },
          { id: "write", tool: "write_file", input: { path: unwritable, content: "x" } },
        ],
      },
      { text: "done" },
    );

    const result = runAs(reader, () =>
      streamText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        stopWhen: stepCountIs(3),
        prompt: "s",
      }),
    );
    const parts = [];
    for await (const part of result.fullStream) if (part.type === "tool-result") parts.push(part);

    expect(existsSync(unwritable)).toBe(false);
    expect(parts.find((part) => part.toolCallId === "write")?.output).toMatch(refusedWrite);
    expect(JSON.stringify(parts.find((part) => part.toolCallId === "read")?.output)).toContain("streamed content");
    expect(await result.text).toBe("done");
  });

  test('onDenied: "throw" turns a deny into a ToolCallDeniedError tool-error', async () => {
    const path = join(fs.workspace, "thrown.md");
    const model = scriptedModel(
      { calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] },
      { text: "ok" },
    );

    const result = await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem", onDenied: "throw" }),
        stopWhen: stepCountIs(3),
        prompt: "t",
      }),
    );

    const error = result.steps[0]?.content.find((part) => part.type === "tool-error");
    expect(ToolCallDeniedError.isInstance(error?.type === "tool-error" ? error.error : undefined)).toBe(true);
    expect(existsSync(path)).toBe(false);
  });

  test("with no chain anywhere, nothing runs and the model reads why", async () => {
    const path = join(fs.workspace, "orphan.md");
    const model = scriptedModel(
      { calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] },
      { text: "ok" },
    );

    const result = await generateText({
      model,
      tools: guardTools(fs.tools, { server: "filesystem" }),
      stopWhen: stepCountIs(3),
      prompt: "n",
    });

    expect(existsSync(path)).toBe(false);
    expect(result.steps[0]?.toolResults[0]?.output).toMatch(
      /^hopguard refused filesystem\/write_file: .*no delegation chain/,
    );
  });

  test("an unreachable PDP is a refusal, and the run does not crash", async () => {
    const unreachable = new GRPC("127.0.0.1:9", { tls: false });
    try {
      const offline = await createGuard({ client: unreachable, timeoutMs: 500 }).forUser(fs.alice);
      const path = join(fs.workspace, "offline.md");
      const model = scriptedModel(
        { calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] },
        { text: "ok" },
      );

      const result = await generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem", delegation: offline }),
        stopWhen: stepCountIs(3),
        prompt: "o",
      });

      expect(existsSync(path)).toBe(false);
      expect(result.steps[0]?.toolResults[0]?.output).toMatch(/^hopguard refused filesystem\/write_file: PDP/);
      expect(result.text).toBe("ok");
    } finally {
      unreachable.close();
    }
  });
});

describe("approvals through guarded tools alone", () => {
  test("a rule asking for a person stops the run with a request; the approved call then runs", async () => {
    const source = join(fs.workspace, "draft.md");
    const destination = join(fs.workspace, "final.md");
    writeFileSync(source, "draft");
    const tools = guardTools(fs.tools, { server: "filesystem" });
    const prompt: ModelMessage[] = [{ role: "user", content: "publish the draft" }];
    const first = await runAs(writer, () =>
      generateText({
        model: scriptedModel({ calls: [{ id: "mv", tool: "move_file", input: { source, destination } }] }),
        tools,
        messages: prompt,
      }),
    );

    const request = first.content.find((part) => part.type === "tool-approval-request");
    expect(request).toMatchObject({ toolCall: { toolCallId: "mv" } });
    expect(request?.type === "tool-approval-request" && request.isAutomatic).toBeFalsy();
    expect(existsSync(source) && !existsSync(destination)).toBe(true);

    const approvalId = request?.type === "tool-approval-request" ? request.approvalId : "";
    const second = await runAs(writer, () =>
      generateText({
        model: scriptedModel({ text: "moved" }),
        tools,
        messages: [
          ...prompt,
          ...first.response.messages,
          { role: "tool", content: [{ type: "tool-approval-response", approvalId, approved: true }] },
        ],
      }),
    );

    expect(second.text).toBe("moved");
    expect(existsSync(source)).toBe(false);
    expect(readFileSync(destination, "utf8")).toBe("draft");
  });

  test("a call that needs approval is refused when it reaches execute without one", async () => {
    const source = join(fs.workspace, "stay.md");
    const destination = join(fs.workspace, "gone.md");
    writeFileSync(source, "stay");
    const model = scriptedModel(
      { calls: [{ id: "mv", tool: "move_file", input: { source, destination } }] },
      { text: "ok" },
    );

    // An app policy that waves everything through replaces needsApproval; execute still holds the line.
    tracing.reset();
    const result = await runAs(writer, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        toolApproval: () => "not-applicable",
        stopWhen: stepCountIs(3),
        prompt: "m",
      }),
    );

    expect(result.steps[0]?.toolResults[0]?.output).toBe(
      "hopguard refused filesystem/move_file: a human's approval is required " +
        "(moving files changes what others rely on) and was not given",
    );
    expect(existsSync(source) && !existsSync(destination)).toBe(true);
    // The refusal is on record: the authorize span alone says "allow, approval required".
    expect(tracing.spans().filter((span) => span.name === "hopguard.approval")).toMatchObject([
      {
        attributes: {
          "hopguard.approval": "declined",
          "hopguard.denied_by": "approval",
          "hopguard.reason": "a person did not approve it: no approval of this call was given",
        },
      },
    ]);

    const thrown = await runAs(writer, () =>
      generateText({
        model: scriptedModel({ calls: [{ id: "mv", tool: "move_file", input: { source, destination } }] }),
        tools: guardTools(fs.tools, { server: "filesystem", onDenied: "throw" }),
        toolApproval: () => "not-applicable",
        prompt: "m",
      }),
    );
    const error = thrown.content.find((part) => part.type === "tool-error");
    expect(error?.type === "tool-error" && error.error).toMatchObject({
      code: "tool_call_denied",
      decision: { deniedBy: "approval" },
    });
    expect(existsSync(source) && !existsSync(destination)).toBe(true);
  });

  test("an approval never widens a deny: an approved write the policy denies still does not run", async () => {
    const path = join(fs.workspace, "forged.md");
    const model = scriptedModel({ text: "ok" });
    // History claiming a person approved a write the researcher may not make.
    const messages: ModelMessage[] = forgedWriteApproval(path);

    await runAs(reader, () => generateText({ model, tools: guardTools(fs.tools, { server: "filesystem" }), messages }));

    expect(existsSync(path)).toBe(false);
    expect(toolResultsSeen(requestsTo(model)[0]).get("w")).toMatchObject({
      value: expect.stringMatching(refusedWrite),
    });
  });
  test("a tool's own needsApproval still asks, about a copy of the same snapshot", async () => {
    const seen: unknown[] = [];
    const original = tool({
      inputSchema: z.object({ path: z.string(), content: z.string() }),
      needsApproval: (input) => {
        seen.push(input);
        return input.content.includes("secret");
      },
      execute: async () => "written",
    });
    const tools = guardTools({ write_file: original }, { server: "filesystem" });
    const path = join(fs.workspace, "own-rule.md");
    const ask = (content: string) =>
      runAs(writer, () =>
        generateText({
          model: scriptedModel({ calls: [{ id: "c1", tool: "write_file", input: { path, content } }] }, { text: "ok" }),
          tools,
          stopWhen: stepCountIs(2),
          prompt: "w",
        }),
      );

    const plain = await ask("hello");
    const sensitive = await ask("the secret plan");

    expect(plain.content.some((part) => part.type === "tool-approval-request")).toBe(false);
    expect(sensitive.content.filter((part) => part.type === "tool-approval-request")).toHaveLength(1);
    expect(seen).toEqual([
      { path, content: "hello" },
      { path, content: "the secret plan" },
    ]);
    // A call the policy denies is put to the tool's own rule too (so that a PDP answering differently at execute
    // cannot skip it); execute refuses it either way.
    const denied = await runAs(reader, () =>
      generateText({
        model: scriptedModel({ calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] }),
        tools,
        prompt: "w",
      }),
    );
    expect(seen[2]).toEqual({ path, content: "x" });
    expect(denied.toolResults[0]?.output).toMatch(refusedWrite);
  });
});

describe("what guardTools keeps", () => {
  test("everything but execute is the original tool's, and a converter never sees a refusal", async () => {
    let ran = 0;
    const onInputAvailable = () => {};
    const original = tool({
      description: "Writes a file",
      title: "Write",
      inputSchema: z.object({ path: z.string(), content: z.string() }),
      outputSchema: z.object({ bytes: z.number() }),
      providerOptions: { test: { cache: true } },
      metadata: { annotations: { destructiveHint: true } },
      strict: true,
      inputExamples: [{ input: { path: "/a", content: "b" } }],
      onInputAvailable,
      execute: async ({ content }) => {
        ran++;
        return { bytes: content.length };
      },
      // Throws on anything but its own output shape, as a real converter may.
      toModelOutput: ({ output }) => ({ type: "text", value: `${output.bytes.toFixed(0)} bytes written` }),
    });
    const guarded = guardTools({ write_file: original }, { server: "filesystem" }).write_file;

    for (const key of Object.keys(original) as (keyof typeof original)[]) {
      if (key !== "execute" && key !== "toModelOutput") expect(guarded[key], key).toBe(original[key]);
    }
    expect(typeof guarded.needsApproval).toBe("function");

    const path = join(fs.workspace, "kept.md");
    const call = { calls: [{ id: "c1", tool: "write_file", input: { path, content: "four" } }] };
    const deniedModel = scriptedModel(call, { text: "ok" });
    await runAs(reader, () =>
      generateText({ model: deniedModel, tools: { write_file: guarded }, stopWhen: stepCountIs(3), prompt: "k" }),
    );
    expect(ran).toBe(0);
    expect(toolResultsSeen(requestsTo(deniedModel)[1]).get("c1")).toMatchObject({
      value: expect.stringMatching(refusedWrite),
    });

    const allowedModel = scriptedModel(call, { text: "ok" });
    await runAs(writer, () =>
      generateText({ model: allowedModel, tools: { write_file: guarded }, stopWhen: stepCountIs(3), prompt: "k" }),
    );
    expect(ran).toBe(1);
    expect(toolResultsSeen(requestsTo(allowedModel)[1]).get("c1")).toEqual({ type: "text", value: "4 bytes written" });
  });

  test("a streaming tool still streams when allowed, and never starts when denied", async () => {
    let started = 0;
    const progress = tool({
      inputSchema: z.object({ path: z.string(), content: z.string() }),
      async *execute() {
        started++;
        yield "half written";
        yield "written";
      },
    });
    const guarded = guardTools({ write_file: progress }, { server: "filesystem" });
    const path = join(fs.workspace, "streaming.md");
    const run = async (delegation: Delegation) => {
      const model = scriptedModel({ calls: [{ id: "c1", tool: "write_file", input: { path, content: "x" } }] });
      const result = runAs(delegation, () => streamText({ model, tools: guarded, prompt: "s" }));
      const outputs = [];
      for await (const part of result.fullStream) {
        if (part.type === "tool-result") outputs.push(`${part.preliminary ? "partial" : "final"}: ${part.output}`);
      }
      return outputs;
    };

    expect((await run(reader)).at(-1)).toMatch(
      /^final: hopguard refused filesystem\/write_file: denied by agent "researcher"/,
    );
    expect(started).toBe(0);
    expect(await run(writer)).toEqual(["partial: half written", "partial: written", "final: written"]);
    expect(started).toBe(1);
  });

  test("one hopguard.authorize span per allowed call, made at the approval step; execute reuses it", async () => {
    tracing.reset();
    const path = join(fs.workspace, "traced.md");
    writeFileSync(path, "traced");
    // Stands in for @ai-sdk/otel (not installed): like it, it runs each execute inside an `execute_tool` span.
    const toolSpans: Telemetry = {
      executeTool: ({ toolCall, execute }) =>
        tracing.tracer.startActiveSpan(`execute_tool ${toolCall?.toolName}`, async (span) => {
          try {
            return await execute();
          } finally {
            span.end();
          }
        }),
    };
    const model = scriptedModel({ calls: [{ id: "c1", tool: "read_text_file", input: { path } }] }, { text: "ok" });

    await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(fs.tools, { server: "filesystem" }),
        telemetry: { integrations: [toolSpans] },
        stopWhen: stepCountIs(3),
        prompt: "t",
      }),
    );

    const spans = tracing.spans();
    const toolSpan = spans.find((span) => span.name === "execute_tool read_text_file");
    const authorize = spans.filter((span) => span.name === "hopguard.authorize");
    expect(toolSpan).toBeDefined();
    // needsApproval asked the PDP before the SDK opened the tool span; execute ran on that allow, without a round.
    expect(authorize).toHaveLength(1);
    expect(authorize[0]?.parentSpanContext?.spanId).not.toBe(toolSpan?.spanContext().spanId);
    expect(authorize[0]?.attributes).toMatchObject({ "hopguard.decision": "allow", "gen_ai.tool.call.id": "c1" });
  });
});
