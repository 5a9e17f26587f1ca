import type { BaseMessage } from "@langchain/core/messages";
import { type DynamicStructuredTool, tool } from "@langchain/core/tools";
import { toActor } from "../../actor.ts";
import { runAs } from "../../current-delegation.ts";
import type { AgentInput, Delegation } from "../../delegation.ts";
import { HopguardError, InvalidInputError } from "../../errors.ts";
import { refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import { noChainError } from "../../warnings.ts";
import { rememberAgentTool } from "./agent-identity.ts";
import { chainPlaces, refusalMessage } from "./call-check.ts";
import { contextDelegation } from "./options.ts";

/** What {@link agentTool} needs of an agent: a `createAgent` agent has it. */
export interface InvocableAgent {
  invoke(
    input: { messages: { role: "user"; content: string }[] },
    config: { context: { delegation: Delegation }; signal?: AbortSignal },
  ): Promise<{ messages: BaseMessage[] }>;
}

/** What a function given to {@link agentTool} receives. */
export interface AgentRequest {
  /** The task the parent model handed over. */
  task: string;
  /** The chain extended to this agent; it is also the ambient chain (`runAs`) while the function runs. */
  delegation: Delegation;
  /** Aborts with the parent's tool call. */
  signal: AbortSignal | undefined;
}

/**
 * The agent behind an agent tool: a `createAgent` agent, or a function that runs any other agent — an AI SDK
 * `ToolLoopAgent`, say — and answers with its text.
 */
export type SubAgent = InvocableAgent | ((request: AgentRequest) => PromiseLike<string | { text: string }>);

/** Options for {@link agentTool}. */
export interface AgentToolOptions {
  /** The tool name the parent's model calls. */
  name: string;
  /** What the sub-agent does, for the parent's model. */
  description: string;
  /** Who the sub-agent is: its id, roles and attributes, and the scope it asks for. */
  agent: AgentInput;
  /**
   * The parent chain that delegates.
   *
   * @defaultValue the runtime context's `delegation`, else the one set by `runAs`
   */
  delegation?: Delegation | undefined;
}

/**
 * Exposes an agent as a tool of a parent agent. Each call first delegates the parent's chain to the sub-agent, then
 * runs it with the longer chain — in its context and as the ambient chain — and answers with its final message. The
 * sub-agent may be another `createAgent` agent or a function running an agent of any framework.
 *
 * @remarks
 * Whatever the sub-agent calls is authorized for every hop, so it cannot do what its parent may not. The tool
 * authorizes itself by delegating, so {@link hopguardMiddleware} and {@link guardTools} pass it through. A refused
 * delegation, a PDP that cannot answer, or no chain at all gives the parent's model a refusal, not an exception.
 * The sub-agent's runtime context is `{ delegation }`, in place of the parent's. Throws {@link InvalidInputError} at
 * once when `options.agent` is malformed.
 *
 * @example
 * ```ts
 * import { createAgent } from "langchain";
 * import { agentTool, hopguardMiddleware } from "hopguard/langchain";
 *
 * const researcher = createAgent({ model, tools, middleware: [hopguardMiddleware({ server: "filesystem" })] });
 * const orchestrator = createAgent({
 *   model,
 *   tools: [
 *     agentTool(researcher, {
 *       name: "research",
 *       description: "Reads the workspace and answers questions about it",
 *       agent: { id: "researcher", roles: ["agent", "researcher"], scope: { tools: ["filesystem/read_*"] } },
 *     }),
 *   ],
 * });
 * await orchestrator.invoke({ messages }, { context: { delegation: await alice.delegate(planner) } });
 * ```
 */
export function agentTool(agent: SubAgent, options: AgentToolOptions): DynamicStructuredTool {
  const { name, description } = options;
  if (typeof agent !== "function" && typeof agent?.invoke !== "function") {
    throw new InvalidInputError("agent", "must be a createAgent agent (with invoke) or a function running one");
  }
  toActor(options.agent, "options.agent");
  const agentTool = tool(
    async (input, config) => {
      const refuse = (reason: string) => {
        const refusal = refusalText({ server: "agent", tool: options.agent.id }, reason);
        return config.toolCall?.id === undefined ? refusal : refusalMessage({ name, id: config.toolCall.id }, refusal);
      };
      const parent = resolveDelegation(options.delegation, contextDelegation(config.context));
      if (parent === undefined) return refuse(noChainError(`agent tool "${name}"`, chainPlaces).message);
      let child: Delegation;
      try {
        child = await parent.delegate(options.agent, { signal: config.signal });
      } catch (error) {
        if (HopguardError.isInstance(error)) return refuse(error.message);
        throw error;
      }
      const { task } = input as { task: string };
      return runAs(child, () => run(agent, { task, delegation: child, signal: config.signal }));
    },
    {
      name,
      description,
      schema: {
        type: "object",
        properties: { task: { type: "string", description: "What the agent should do, in plain words" } },
        required: ["task"],
      },
    },
  );
  rememberAgentTool(agentTool);
  return agentTool;
}

async function run(agent: SubAgent, request: AgentRequest): Promise<string> {
  const { task, delegation, signal } = request;
  if (typeof agent === "function") {
    const answer = await agent(request);
    return typeof answer === "string" ? answer : answer.text;
  }
  const result = await agent.invoke(
    { messages: [{ role: "user", content: task }] },
    { context: { delegation }, ...(signal === undefined ? {} : { signal }) },
  );
  return result.messages.at(-1)?.text ?? "";
}
