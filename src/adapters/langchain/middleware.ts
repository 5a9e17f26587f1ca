import type { ClientTool, ServerTool } from "@langchain/core/tools";
import { createMiddleware } from "langchain";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import type { ToolDescriptor } from "../../tool-listing.ts";
import { isAgentTool } from "./agent-identity.ts";
import { annotationsOf, authorizedInput, checkCall, isRecord, refusalMessage, toolArguments } from "./call-check.ts";
import { contextDelegation, type ToolGuardOptions } from "./options.ts";
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
 * When a policy asks for approval, the run pauses with an {@link ApprovalInterrupt} — the shape of
 * `humanInTheLoopMiddleware` — until it is resumed with `approve` or `reject`; this needs a checkpointer. Each call
 * pauses on its own, so two calls needing approval in one step are two interrupts, resumed by interrupt id. Guard a
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
 * await agent.invoke(
 *   { messages: [{ role: "user", content: "What is in notes.md?" }] },
 *   { context: { delegation: researcher }, configurable: { thread_id: "1" } },
 * );
 * ```
 */
export function hopguardMiddleware(options: HopguardMiddlewareOptions = {}) {
  const { hideTools = true } = options;
  const chainOf = (context: unknown) => resolveDelegation(options.delegation, contextDelegation(context));

  return createMiddleware({
    name: "hopguard",
    wrapModelCall: async (request, handler) => {
      if (!hideTools) return handler(request);
      const tools = await callableTools(chainOf(request.runtime.context), request.tools, options);
      return handler({ ...request, tools });
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
        { delegation: chainOf(runtime.context), interrupt: runtime.interrupt, signal: runtime.signal },
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

/** The client tools `delegation` could call, in order; none without a chain or when the PDP cannot answer. */
async function callableTools(
  delegation: Delegation | undefined,
  tools: readonly (ClientTool | ServerTool)[],
  options: HopguardMiddlewareOptions,
): Promise<ClientTool[]> {
  if (delegation === undefined) return [];
  const described: (ToolDescriptor & { client: ClientTool })[] = [];
  const agents = new Set<ClientTool>();
  for (const tool of tools) {
    if (!isClientTool(tool)) continue;
    if (isAgentTool(tool)) {
      agents.add(tool);
      described.push({ server: "agent", tool: tool.name, client: tool });
      continue;
    }
    let target: ToolTarget;
    try {
      target = toolTarget(tool.name, options);
    } catch {
      continue;
    }
    described.push({ ...target, annotations: annotationsOf(tool), client: tool });
  }
  try {
    // Agent tools are offered as they are: calling one asks every hop whether it may delegate.
    const listed = new Set(
      (await delegation.callableTools(described.filter((tool) => !agents.has(tool.client)))).map((tool) => tool.client),
    );
    return described.map((tool) => tool.client).filter((tool) => agents.has(tool) || listed.has(tool));
  } catch {
    // The listing span records why; offering nothing fails closed, and the run goes on without tools.
    return [];
  }
}

function isClientTool(tool: ClientTool | ServerTool): tool is ClientTool & { name: string } {
  return typeof (tool as { invoke?: unknown }).invoke === "function" && typeof tool.name === "string";
}
