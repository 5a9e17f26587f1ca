import { AIMessage } from "@langchain/core/messages";
import type { ClientTool, ServerTool } from "@langchain/core/tools";
import { createMiddleware } from "langchain";
import { z } from "zod";
import { type ToolTarget, toolCallKey, type ValidatedToolCall, validateToolCall } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { decideToolCall, refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import { noChainError } from "../../warnings.ts";
import { isAgentTool } from "./agent-identity.ts";
import { approvalAnswers, approvalInterrupt, type PendingApproval } from "./approval-interrupt.ts";
import {
  annotationsOf,
  authorizedArguments,
  authorizedInput,
  chainPlaces,
  checkCall,
  isRecord,
  refusalMessage,
  toolArguments,
} from "./call-check.ts";
import { callableFor } from "./callable-tools.ts";
import { contextDelegation, type ToolGuardOptions } from "./options.ts";
import { StepApprovals, type StepEntry } from "./step-approvals.ts";
import { toolTarget } from "./tool-target.ts";

/** Options for {@link hopguardMiddleware}. */
export interface HopguardMiddlewareOptions extends ToolGuardOptions {
  /**
   * Whether each model call is offered only the tools the chain could call, so the model never sees the others.
   * Costs a few PDP requests per model call; every call is authorized on its own either way.
   *
   * @defaultValue `true`
   */
  hideTools?: boolean | undefined;
}

/**
 * Agent middleware for `createAgent` that authorizes every tool call, for every hop of the acting chain, and hides
 * the tools the chain may not call.
 *
 * @remarks
 * A denied call does not run: the model gets an error `ToolMessage` saying why. With `onDenied: "throw"` the run fails
 * instead, with LangChain's `MiddlewareError` whose `cause` is the {@link ToolCallDeniedError} (LangChain wraps what
 * a middleware throws).
 *
 * Each model step is decided once, right after the model answers (`afterModel`): when policies ask a person to
 * approve some of its calls, the run pauses with ONE {@link ApprovalInterrupt} for all of them — the shape of
 * `humanInTheLoopMiddleware`, one action request per call — until it is resumed with one decision per call, in order
 * (`approve` or `reject`); as with HITL, nothing of the step runs before the answer, and a checkpointer is needed.
 * Each call is still checked when it runs: that decision is reused only for the same chain and exactly the same
 * snapshot (else asked again), and an answer counts only for the call it was given for. Guard a
 * tool with this or with {@link guardTools}, not both.
 *
 * Put it **last** in `middleware`, innermost: LangChain composes `wrapToolCall` with the first middleware outermost,
 * so a middleware placed after hopguard runs between its check and the tool and could replace the call, while what
 * one placed before it changes is authorized as changed. hopguard reads the call once, authorizes that snapshot and
 * hands the tool a fresh copy of exactly it. The PDP is asked about the tool that runs: `request.tool` when an outer
 * middleware set one, whatever name the call gives.
 *
 * A call's chain is the deepest in effect (see {@link resolveDelegation}): with `delegation` bound to an
 * orchestrator's chain, a call made inside a sub-agent's run (an {@link agentTool}) acts for the sub-agent's
 * longer chain. A person's answer to an approval is recorded as a `hopguard.approval` span.
 *
 * Provider-side tools, which run at the model provider rather than in the tool node, are not offered either:
 * hopguard cannot authorize their calls. With `hideTools: false` the model is offered every tool as given; when the
 * PDP cannot answer while listing, the model is offered none.
 *
 * @example
 * ```ts
 * import { createAgent, toolCallLimitMiddleware } from "langchain";
 * import { MemorySaver } from "@langchain/langgraph";
 * import { hopguardMiddleware } from "hopguard/langchain";
 *
 * const agent = createAgent({
 *   model,
 *   tools: await mcp.getTools("filesystem"),
 *   // hopguard last: innermost, so nothing runs between its check and the tool.
 *   middleware: [toolCallLimitMiddleware({ runLimit: 20 }), hopguardMiddleware({ server: "filesystem" })],
 *   checkpointer: new MemorySaver(),
 * });
 * const researcher = await alice.delegate({ id: "researcher", roles: ["agent"] });
 * // `context` is typed as required (unless the options bind `delegation`): leaving it out does not compile.
 * await agent.invoke(
 *   { messages: [{ role: "user", content: "What is in notes.md?" }] },
 *   { context: { delegation: researcher }, configurable: { thread_id: "1" } },
 * );
 * ```
 */
export function hopguardMiddleware(
  options: HopguardMiddlewareOptions & { delegation: Delegation },
): ReturnType<typeof buildMiddleware<typeof optionalContext>>;
export function hopguardMiddleware(
  options?: HopguardMiddlewareOptions,
): ReturnType<typeof buildMiddleware<typeof requiredContext>>;
export function hopguardMiddleware(
  options: HopguardMiddlewareOptions = {},
):
  | ReturnType<typeof buildMiddleware<typeof requiredContext>>
  | ReturnType<typeof buildMiddleware<typeof optionalContext>> {
  return options.delegation === undefined
    ? buildMiddleware(options, requiredContext)
    : buildMiddleware(options, optionalContext);
}

// The runtime context hopguard reads. Parsed leniently — a run without a chain gets hopguard's refusal, which says
// where it looked, not a schema error — but typed as required unless `options.delegation` is given, so that
// forgetting `{ context: { delegation } }` in `agent.invoke` is a type error.
const lenientContext = z.object({ delegation: z.custom<Delegation | undefined>().optional() });
const optionalContext = lenientContext;
const requiredContext = lenientContext as unknown as z.ZodObject<{
  delegation: z.ZodCustom<Delegation | undefined, Delegation | undefined>;
}>;

function buildMiddleware<S extends typeof requiredContext | typeof optionalContext>(
  options: HopguardMiddlewareOptions,
  contextSchema: S,
) {
  const { hideTools = true } = options;
  const chainOf = (context: unknown) => resolveDelegation(options.delegation, contextDelegation(context));
  const step = new StepApprovals();
  // Annotations of the tools the model was last offered, by name: the afterModel step has only the calls' names.
  const offered = new Map<string, { annotations: Record<string, unknown> | undefined; agent: boolean }>();

  return createMiddleware({
    name: "hopguard",
    contextSchema,
    wrapModelCall: async (request, handler) => {
      for (const tool of request.tools) {
        const name = (tool as { name?: unknown }).name;
        if (typeof name === "string") offered.set(name, { annotations: annotationsOf(tool), agent: isAgentTool(tool) });
      }
      if (!hideTools) return handler(request);
      const tools = await hiddenExcept(chainOf(request.runtime.context), request.tools, options);
      return handler({ ...request, tools });
    },
    afterModel: async (state, runtime) => {
      // Every call of the model's step is decided here, and those a policy wants a person to approve are asked about
      // in ONE interrupt, as humanInTheLoopMiddleware does. wrapToolCall still checks each call as it runs.
      const delegation = chainOf(runtime.context);
      const interrupt = runtime.interrupt as ((value: unknown) => unknown) | undefined;
      if (delegation === undefined || interrupt === undefined) return undefined;
      const pending = await decideStep(lastToolCalls(state), delegation, offered, step, options, runtime.signal);
      if (pending.length === 0) return undefined;
      const answers = approvalAnswers(
        await interrupt(approvalInterrupt(pending.map((entry) => entry.pending))),
        pending.length,
      );
      for (const [index, { id, entry }] of pending.entries()) step.remember(id, { ...entry, answer: answers[index] });
      return undefined;
    },
    wrapToolCall: async (request, handler) => {
      // Read once: what is authorized below is what runs, whatever the request's getters would say later.
      const { toolCall, tool, runtime } = request;
      if (isAgentTool(tool)) return handler({ ...request, tool, toolCall });
      const { type, id, name, args } = toolCall;
      // The PDP is asked about the tool that runs: the request's tool when a middleware put one there, else the named.
      const runs = tool === undefined ? name : String(tool.name);
      let target: ToolTarget;
      try {
        target = toolTarget(runs, options);
      } catch (error) {
        // No target, nothing to ask the PDP about: refused like any other call that cannot be authorized.
        if (options.onDenied === "throw") throw error;
        const reason = error instanceof Error ? error.message : String(error);
        return refusalMessage({ name, id }, refusalText({ server: "(unknown)", tool: runs }, reason));
      }
      const wasRecord = isRecord(args);
      const verdict = await checkCall(
        { name: runs, args: toolArguments(args), id, target, annotations: annotationsOf(tool) },
        { delegation: chainOf(runtime.context), interrupt: runtime.interrupt, signal: runtime.signal, step },
        options,
      );
      if (!verdict.allowed) return refusalMessage({ name, id }, verdict.refusal);
      const authorized = {
        ...(type === undefined ? {} : { type }),
        ...(id === undefined ? {} : { id }),
        name,
        args: authorizedInput(verdict.call, wasRecord) as Record<string, unknown>,
      };
      return handler({ ...request, tool, toolCall: authorized });
    },
  });
}

/** The tool calls of the model's last message, each read once; none when the last message is not the model's. */
function lastToolCalls(state: { messages?: unknown }): { id: string; name: string; args: unknown }[] {
  const messages = Array.isArray(state.messages) ? state.messages : [];
  const last = messages.at(-1);
  if (!AIMessage.isInstance(last)) return [];
  return (last.tool_calls ?? []).flatMap((call) => {
    const { id, name, args } = call;
    return typeof id === "string" && typeof name === "string" ? [{ id, name, args }] : [];
  });
}

/**
 * Decides every call of the step and remembers each outcome for its wrapToolCall; returns the calls that wait for a
 * person. A call that cannot be decided here (unknown server, bad input, an agent tool) is left to wrapToolCall.
 */
async function decideStep(
  calls: readonly { id: string; name: string; args: unknown }[],
  delegation: Delegation,
  offered: ReadonlyMap<string, { annotations: Record<string, unknown> | undefined; agent: boolean }>,
  step: StepApprovals,
  options: HopguardMiddlewareOptions,
  signal: AbortSignal | undefined,
): Promise<{ id: string; entry: Omit<StepEntry, "expiresAt" | "answer">; pending: PendingApproval }[]> {
  const decided = await Promise.all(
    calls.map(async ({ id, name, args }) => {
      const known = offered.get(name);
      if (known?.agent === true) return undefined;
      let snapshot: ValidatedToolCall;
      let target: ToolTarget;
      try {
        target = toolTarget(name, options);
        snapshot = validateToolCall({
          ...target,
          arguments: toolArguments(args),
          annotations: known?.annotations,
          toolCallId: id,
        });
      } catch {
        return undefined;
      }
      const outcome = await decideToolCall(delegation, snapshot, { signal, tracer: options.tracer });
      const entry = { delegation, key: toolCallKey(snapshot), outcome };
      step.remember(id, { ...entry, answer: undefined });
      if (outcome.type !== "approval-required") return undefined;
      const pending: PendingApproval = {
        toolCall: { name, args: authorizedArguments(outcome.call), id },
        target,
        decision: outcome.decision,
        approval: outcome.approval,
      };
      return { id, entry, pending };
    }),
  );
  return decided.filter((entry) => entry !== undefined);
}

/** The client tools `delegation` could call, in order; none without a chain or when the PDP cannot answer. */
async function hiddenExcept(
  delegation: Delegation | undefined,
  tools: readonly (ClientTool | ServerTool)[],
  options: HopguardMiddlewareOptions,
): Promise<ClientTool[]> {
  if (delegation === undefined) {
    // Refused, and said once: a run that never gets a chain is a setup mistake, not a policy.
    noChainError("listing the tools for a model call", chainPlaces);
    return [];
  }
  try {
    // Provider-side tools run at the provider, where hopguard cannot authorize them: never offered.
    return await callableFor(delegation, tools.filter(isClientTool), options, undefined);
  } catch {
    // The listing span records why; offering nothing fails closed, and the run goes on without tools.
    return [];
  }
}

function isClientTool(tool: ClientTool | ServerTool): tool is ClientTool & { name: string } {
  return typeof (tool as { invoke?: unknown }).invoke === "function" && typeof tool.name === "string";
}
