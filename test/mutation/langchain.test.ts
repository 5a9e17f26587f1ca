import { AIMessage, type BaseMessage, ToolMessage } from "@langchain/core/messages";
import { type StructuredToolInterface, tool } from "@langchain/core/tools";
import { beforeAll, beforeEach, describe, expect, test, vi } from "vitest";
import { approvalAnswer } from "../../src/adapters/langchain/approval-interrupt.ts";
import {
  annotationsOf,
  checkCall,
  isRecord,
  refusalMessage,
  toolArguments,
} from "../../src/adapters/langchain/call-check.ts";
import {
  type AgentRequest,
  type ApprovalInterrupt,
  agentTool,
  guardTools,
  hopguardMiddleware,
  type InvocableAgent,
} from "../../src/adapters/langchain/index.ts";
import { createGuard, type Delegation } from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { meddlingPdp } from "../support/recording-pdp.ts";
import { memoryTracing } from "../support/tracing.ts";
import { alice, planner, researcher, scribe } from "../support/users.ts";
import { approvalAskingPdp } from "./fake-pdp.ts";

// Cases written to kill the mutants that survived the first mutation run in src/adapters/langchain/. Real PDP,
// real LangChain tools and middleware objects (their hooks called the way createAgent calls them).

const tracing = memoryTracing();
const guard = createGuard({ client: sharedPdpClient(), tracer: tracing.tracer });
const notes = "/workspace/alice/notes.md";
let reader: Delegation;
let writer: Delegation;
let orchestrator: Delegation;

beforeAll(async () => {
  reader = await guard.forUser(alice).delegate(researcher);
  writer = await guard.forUser(alice).delegate(scribe);
  orchestrator = await guard.forUser(alice).delegate(planner);
});
beforeEach(() => tracing.reset());

/** An in-process tool that records the arguments it ran with. */
function recordingTool(name: string, ran: unknown[]): StructuredToolInterface {
  return tool(
    async (args: unknown) => {
      ran.push(args);
      return `${name} ran`;
    },
    { name, description: name, schema: { type: "object", properties: {}, additionalProperties: true } },
  ) as unknown as StructuredToolInterface;
}

describe("agentTool", () => {
  /** An InvocableAgent that records what it was invoked with and answers with `messages`. */
  function recordingAgent(messages: BaseMessage[]) {
    const invocations: { input: unknown; config: Record<string, unknown> }[] = [];
    const agent: InvocableAgent = {
      invoke: async (input, config) => {
        invocations.push({ input, config: config as unknown as Record<string, unknown> });
        return { messages };
      },
    };
    return { agent, invocations };
  }
  const funcOf = (delegate: ReturnType<typeof agentTool>) =>
    (delegate as unknown as { func: (input: unknown, runManager: undefined, config: unknown) => Promise<unknown> })
      .func;

  test("the sub-agent gets the task as a user message, the child chain as its context, and the signal", async () => {
    const { agent, invocations } = recordingAgent([new AIMessage("first"), new AIMessage("the answer")]);
    const delegate = agentTool(agent, {
      name: "research",
      description: "d",
      agent: researcher,
      delegation: orchestrator,
    });

    expect(await delegate.invoke({ task: "find it" })).toBe("the answer");
    const signal = new AbortController().signal;
    await delegate.invoke({ task: "again" }, { signal });

    expect(invocations.map((call) => call.input)).toEqual([
      { messages: [{ role: "user", content: "find it" }] },
      { messages: [{ role: "user", content: "again" }] },
    ]);
    expect(Object.keys(invocations[0]?.config ?? {})).toEqual(["context"]);
    expect(Object.keys(invocations[1]?.config ?? {})).toEqual(["context", "signal"]);
    expect(invocations[1]?.config.signal).toBeInstanceOf(AbortSignal);
    const context = invocations[0]?.config.context as { delegation: Delegation };
    expect(Object.keys(context)).toEqual(["delegation"]);
    expect(context.delegation.chain).toEqual(["alice", "planner", "researcher"]);
  });

  test("a sub-agent that answers with no message gives an empty result", async () => {
    const { agent } = recordingAgent([]);
    const delegate = agentTool(agent, {
      name: "research",
      description: "d",
      agent: researcher,
      delegation: orchestrator,
    });
    expect(await delegate.invoke({ task: "x" })).toBe("");
  });

  test("an aborted call never delegates, so the sub-agent never runs: the abort propagates", async () => {
    const { agent, invocations } = recordingAgent([new AIMessage("ran")]);
    const delegate = agentTool(agent, {
      name: "research",
      description: "d",
      agent: researcher,
      delegation: orchestrator,
    });
    const aborted = new AbortController();
    aborted.abort();
    // The tool's own function, as LangChain's tool node calls it, with the parent's (aborted) signal.
    await expect(funcOf(delegate)({ task: "x" }, undefined, { signal: aborted.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    expect(invocations).toEqual([]);
  });

  test("a call aborted while the delegation is being checked never runs the sub-agent", async () => {
    const { agent, invocations } = recordingAgent([new AIMessage("ran")]);
    const controller = new AbortController();
    let armed = false;
    const meddling = createGuard({
      client: meddlingPdp(sharedPdpClient(), () => {
        if (armed) controller.abort();
      }),
      tracer: tracing.tracer,
    });
    const parent = await meddling.forUser(alice).delegate(planner);
    tracing.reset();
    armed = true;
    const delegate = agentTool(agent, { name: "research", description: "d", agent: researcher, delegation: parent });
    await expect(funcOf(delegate)({ task: "x" }, undefined, { signal: controller.signal })).rejects.toMatchObject({
      name: "AbortError",
    });
    // LangChain rejects at the abort; the tool's function goes on in the background until its delegation settles.
    await vi.waitFor(() => expect(tracing.spans().some((span) => span.name === "hopguard.delegate")).toBe(true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(invocations).toEqual([]);
    const span = tracing.spans().find((candidate) => candidate.name === "hopguard.delegate");
    expect(span?.attributes["hopguard.decision"]).not.toBe("allow");
  });

  test("without a chain the refusal names the agent tool", async () => {
    const { agent, invocations } = recordingAgent([new AIMessage("ran")]);
    const delegate = agentTool(agent, { name: "research", description: "d", agent: researcher });
    expect(await delegate.invoke({ task: "x" })).toMatch(
      /^hopguard refused agent\/researcher: .*agent tool "research"/,
    );
    expect(invocations).toEqual([]);
  });

  test("its schema asks for a task string; malformed agents are refused up front", () => {
    const run = async (request: AgentRequest) => request.task;
    const delegate = agentTool(run, { name: "research", description: "d", agent: researcher });
    expect(delegate.schema).toEqual({
      type: "object",
      properties: { task: { type: "string", description: "What the agent should do, in plain words" } },
      required: ["task"],
    });
    for (const bad of [null, {}]) {
      expect(() => agentTool(bad as never, { name: "r", description: "d", agent: researcher })).toThrow(
        expect.objectContaining({
          code: "invalid_input",
          message: expect.stringMatching(
            /^agent.*must be a createAgent agent \(with invoke\) or a function running one/,
          ),
        }),
      );
    }
    expect(() => agentTool(run, { name: "r", description: "d", agent: { id: "", roles: [] } })).toThrow(
      expect.objectContaining({ code: "invalid_input", message: expect.stringContaining("options.agent") }),
    );
  });
});

describe("approvals", () => {
  test("an empty approver is no approver; a non-string reject message is no reason", () => {
    expect(approvalAnswer({ decisions: [{ type: "approve", approver: "" }] })).toEqual({ approved: true });
    expect(approvalAnswer({ decisions: [{ type: "reject", message: 42 }] })).toEqual({ approved: false });
    expect(approvalAnswer({ decisions: [{ type: "reject", approver: "carol", message: "no" }] })).toEqual({
      approved: false,
      approver: "carol",
      reason: "no",
    });
  });

  test("the interrupt describes who asked, for which chain, and exactly the arguments that run", async () => {
    const args = { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" };
    let asked: ApprovalInterrupt | undefined;
    const verdict = await checkCall(
      {
        name: "move_file",
        args,
        id: "c1",
        target: { server: "filesystem", tool: "move_file" },
        annotations: undefined,
      },
      {
        delegation: writer,
        interrupt: (value) => {
          asked = value as ApprovalInterrupt;
          return { decisions: [{ type: "reject" }] };
        },
        signal: undefined,
      },
      {},
    );
    expect(verdict).toEqual({
      allowed: false,
      refusal: "hopguard refused filesystem/move_file: a person did not approve it",
    });
    const { reasons, requestedBy } = asked?.hopguard.calls[0] ?? { reasons: [], requestedBy: [] };
    expect(asked?.actionRequests[0]?.description).toBe(
      `hopguard: ${reasons.join("; ")} (asked by ${requestedBy.join(", ")} for alice → scribe)\n\n` +
        `Tool: move_file\nArgs: ${JSON.stringify(args, null, 2)}`,
    );
    expect(reasons).toEqual(["moving files changes what others rely on"]);
    expect(requestedBy.length).toBeGreaterThan(1);
  });
});

describe("call-check helpers", () => {
  test("a refusal for a call without a string id has an empty tool_call_id", () => {
    expect(refusalMessage({ name: "t", id: 42 }, "no").tool_call_id).toBe("");
    expect(refusalMessage({ name: "t" }, "no").tool_call_id).toBe("");
  });

  test("annotations of a missing tool, or one without metadata, are none; null is not a record", () => {
    expect(annotationsOf(undefined)).toBeUndefined();
    expect(annotationsOf({})).toBeUndefined();
    expect(annotationsOf({ metadata: { annotations: null } })).toBeUndefined();
    expect(isRecord(null)).toBe(false);
    expect(toolArguments(null)).toEqual({ input: null });
  });
});

describe("guardTools", () => {
  test("a tool call whose own arguments hold type: tool_call hands the wrapped tool exactly that call", async () => {
    // The wrapped tool's invoke, recorded as is: LangChain's own tools cannot parse such arguments themselves.
    const handed: unknown[] = [];
    const wrapped = {
      name: "read_text_file",
      description: "reads",
      schema: { type: "object" },
      invoke: async (input: unknown) => {
        handed.push(input);
        return "ran";
      },
    } as unknown as StructuredToolInterface;
    const [guarded] = guardTools([wrapped], { server: "filesystem", delegation: reader });
    const args = { path: notes, type: "tool_call" };
    expect(await guarded?.invoke({ type: "tool_call", id: "c1", name: "read_text_file", args })).toBe("ran");
    expect(handed).toEqual([{ type: "tool_call", id: "c1", name: "read_text_file", args }]);
  });

  test("null input is refused, not a crash; _call is guarded like invoke", async () => {
    const ran: unknown[] = [];
    const [guarded] = guardTools([recordingTool("read_text_file", ran)], { server: "filesystem", delegation: reader });
    expect(await guarded?.invoke(null as never)).toMatch(/^hopguard refused filesystem\/read_text_file: /);
    const direct = guarded as unknown as { _call: (arg: unknown) => Promise<unknown> };
    expect(await direct._call({ path: notes })).toBe("read_text_file ran");
    expect(ran).toEqual([{ path: notes }]);
  });
});

describe("hopguardMiddleware hooks", () => {
  type Hooks = {
    name: string;
    wrapToolCall: (request: unknown, handler: (request: unknown) => unknown) => Promise<unknown>;
    wrapModelCall: (request: unknown, handler: (request: unknown) => unknown) => Promise<unknown>;
  };
  const hooksOf = (options: Parameters<typeof hopguardMiddleware>[0]) =>
    hopguardMiddleware(options) as unknown as Hooks;
  const runtime = (delegation: Delegation | undefined) => ({
    context: { delegation },
    interrupt: undefined,
    signal: undefined,
  });

  test("it is named hopguard", () => {
    expect(hooksOf({}).name).toBe("hopguard");
  });

  test("the authorized call keeps the model's type and id, and adds none it did not have", async () => {
    const ran: unknown[] = [];
    const read = recordingTool("read_text_file", ran);
    const handed: { toolCall: Record<string, unknown> }[] = [];
    const handler = (request: unknown) => {
      handed.push(request as { toolCall: Record<string, unknown> });
      return new ToolMessage({ content: "ok", tool_call_id: "c1" });
    };
    const hooks = hooksOf({ server: "filesystem" });
    const args = { path: notes };
    await hooks.wrapToolCall(
      { toolCall: { type: "tool_call", id: "c1", name: "read_text_file", args }, tool: read, runtime: runtime(reader) },
      handler,
    );
    await hooks.wrapToolCall(
      { toolCall: { name: "read_text_file", args }, tool: read, runtime: runtime(reader) },
      handler,
    );
    // A call whose tool the request does not carry is judged by its name.
    await hooks.wrapToolCall(
      { toolCall: { name: "read_text_file", args }, tool: undefined, runtime: runtime(reader) },
      handler,
    );
    expect(handed.map((request) => request.toolCall)).toEqual([
      { type: "tool_call", id: "c1", name: "read_text_file", args },
      { name: "read_text_file", args },
      { name: "read_text_file", args },
    ]);
    expect(Object.keys(handed[1]?.toolCall ?? {})).toEqual(["name", "args"]);
  });

  test("a tool whose server cannot be told is refused, or thrown with onDenied throw", async () => {
    const ran: unknown[] = [];
    const read = recordingTool("read_text_file", ran);
    let handled = 0;
    const handler = () => {
      handled++;
      return new ToolMessage({ content: "ran", tool_call_id: "c1" });
    };
    const request = {
      toolCall: { id: "c1", name: "read_text_file", args: { path: notes } },
      tool: read,
      runtime: runtime(reader),
    };
    const refused = (await hooksOf({}).wrapToolCall(request, handler)) as ToolMessage;
    expect(refused.content).toMatch(/^hopguard refused \(unknown\)\/read_text_file: .*cannot tell which server/);
    expect(refused.status).toBe("error");
    await expect(hooksOf({ onDenied: "throw" }).wrapToolCall(request, handler)).rejects.toMatchObject({
      code: "invalid_input",
    });
    expect(handled).toBe(0);
  });

  test("the model is offered no tool without a chain, no provider-side tool, and skips tools it cannot place", async () => {
    const ran: unknown[] = [];
    const read = recordingTool("filesystem__read_text_file", ran);
    const orphan = recordingTool("orphan", ran);
    const providerSide = { type: "web_search", name: "filesystem__list_directory" };
    const offered: unknown[][] = [];
    const handler = (request: unknown) => {
      offered.push((request as { tools: unknown[] }).tools);
      return new AIMessage("ok");
    };
    const hooks = hooksOf({});
    const request = (delegation: Delegation | undefined) => ({
      tools: [orphan, providerSide, read],
      runtime: runtime(delegation),
    });
    await hooks.wrapModelCall(request(reader), handler);
    await hooks.wrapModelCall(request(undefined), handler);
    expect(offered).toEqual([[read], []]);
  });
});

describe("the approval interrupt's reasons, from a PDP that gives none or several", () => {
  test("no reason reads as a policy asking; several are joined", async () => {
    const descriptions: string[] = [];
    for (const reason of [() => undefined, (id: string) => `ask ${id}`]) {
      const delegation = await createGuard({ client: approvalAskingPdp(reason) })
        .forUser(alice)
        .delegate(scribe);
      await checkCall(
        {
          name: "move_file",
          args: {},
          id: "c1",
          target: { server: "filesystem", tool: "move_file" },
          annotations: undefined,
        },
        {
          delegation,
          interrupt: (value) => {
            descriptions.push((value as ApprovalInterrupt).actionRequests[0]?.description ?? "");
            return { decisions: [{ type: "reject" }] };
          },
          signal: undefined,
        },
        {},
      );
    }
    expect(descriptions.map((text) => text.split("\n")[0])).toEqual([
      "hopguard: a policy asks for a person's approval (asked by alice, scribe for alice → scribe)",
      "hopguard: ask alice; ask scribe (asked by alice, scribe for alice → scribe)",
    ]);
  });
});
