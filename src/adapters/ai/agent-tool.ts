import { jsonSchema, type Tool, type ToolExecutionOptions } from "ai";
import { runAs } from "../../current-delegation.ts";
import type { AgentInput, Delegation } from "../../delegation.ts";
import { InvalidInputError } from "../../errors.ts";
import { resolveDelegation } from "../../tool-call-outcome.ts";
import { noChainError } from "../../warnings.ts";
import { rememberAgentTool } from "./agent-identity.ts";
import { take } from "./decision-memo.ts";
import { delegationsInToolOptions } from "./delegation-context.ts";

/** What an agent tool's input looks like to the parent model. */
export interface AgentToolInput {
  /** The task handed to the agent. */
  prompt: string;
}

/** What a function given to {@link agentTool} receives. */
export interface AgentRequest {
  /** The task the parent model handed over. */
  prompt: string;
  /** The chain extended to this agent; it is also the ambient chain (`runAs`) while the function runs. */
  delegation: Delegation;
  /** Aborts with the parent's tool call. */
  abortSignal: AbortSignal | undefined;
}

/** An AI SDK agent, such as a `ToolLoopAgent`: anything whose `generate` takes a prompt and yields text. */
export interface GeneratingAgent {
  generate(options: { prompt: string; abortSignal?: AbortSignal }): PromiseLike<{ text: string }>;
}

/** The agent behind an agent tool: an AI SDK agent, or a function that runs one (e.g. `generateText`). */
export type SubAgent = GeneratingAgent | ((request: AgentRequest) => PromiseLike<string | { text: string }>);

/** Options for {@link agentTool}. */
export interface AgentToolOptions {
  /** What the parent model reads to decide when to hand work to this agent. */
  description: string;
  /** Who the agent is to Cerbos, and the scope it asks for: every hop already in the chain must let it in. */
  agent: AgentInput;
  /**
   * The chain that hands work over.
   *
   * @defaultValue the `delegation` in the tool's `toolsContext` entry (AI SDK 6: `experimental_context`), else the
   * chain `hopguardToolApproval` found for this call (in `runtimeContext`, which the SDK does not hand tools), else
   * the ambient chain set by `runAs`
   */
  delegation?: Delegation | undefined;
}

/**
 * Exposes an AI SDK agent as a tool of a parent agent. Each call extends the chain to `options.agent` — which every
 * hop already in it must allow — and runs the agent inside `runAs(child)`, so its guarded tools act for the whole
 * chain: a sub-agent can never do what its orchestrator may not. The tool's result is the agent's final text.
 *
 * @remarks
 * A refused delegation, a missing chain or an unreachable PDP is a result the parent model reads
 * (`hopguard refused delegating to "…": …`), and the agent does not run. The sub-agent's guarded tools act for the
 * child chain even when bound to the orchestrator's (`guardTools(tools, { delegation: orchestrator })`): the deepest
 * chain in effect decides, so the sub-agent's narrower scope and every hop's policy apply.
 *
 * @example
 * ```ts
 * import { generateText, ToolLoopAgent } from "ai";
 * import { agentTool, guardTools } from "hopguard/ai";
 *
 * const researcherAgent = new ToolLoopAgent({ model, tools: guardTools(await mcpClient.tools(), { server: "filesystem" }) });
 * const research = agentTool(researcherAgent, {
 *   description: "Finds and reads files in the user's workspace",
 *   agent: { id: "researcher", roles: ["agent", "researcher"] },
 * });
 * await guard.runAs(await alice.delegate(planner), () => generateText({ model, tools: { research }, prompt }));
 * ```
 */
export function agentTool(agent: SubAgent, options: AgentToolOptions): Tool<AgentToolInput, string> {
  const runnable = typeof agent === "function" || typeof agent?.generate === "function";
  if (!runnable) throw new InvalidInputError("agent", "must be an AI SDK agent (with generate) or a function");
  if (typeof options?.description !== "string") throw new InvalidInputError("options.description", "must be a string");
  if (typeof options.agent !== "object" || options.agent === null) {
    throw new InvalidInputError("options.agent", "must name the agent: { id, roles, attr?, scope? }");
  }
  const { description, agent: identity, delegation: explicit } = options;
  const refusal = (reason: string) => `hopguard refused delegating to "${String(identity.id)}": ${reason}`;

  const tool: Tool<AgentToolInput, string> = {
    description,
    inputSchema: jsonSchema<AgentToolInput>({
      type: "object",
      properties: { prompt: { type: "string", description: "The task, with everything the agent needs to know" } },
      required: ["prompt"],
      additionalProperties: false,
    }),
    execute: async (input: AgentToolInput, callOptions: ToolExecutionOptions<unknown>) => {
      if (typeof input?.prompt !== "string") throw new InvalidInputError("input.prompt", "must be a string");
      const { abortSignal } = callOptions ?? {};
      const remembered = take(callOptions?.messages, callOptions?.toolCallId);
      const parent = resolveDelegation(explicit, ...delegationsInToolOptions(callOptions), remembered?.delegation);
      if (parent === undefined) {
        return refusal(noChainError(`delegating to "${identity.id}"`, agentToolPlaces).message);
      }
      let child: Delegation;
      try {
        child = await parent.delegate(identity, { signal: abortSignal });
      } catch (error) {
        // A policy's deny, a widened scope, a cycle, bad input or an unreachable PDP: the agent never runs.
        return refusal(error instanceof Error ? error.message : String(error));
      }
      const request: AgentRequest = { prompt: input.prompt, delegation: child, abortSignal };
      const result = await runAs(child, () => run(agent, request));
      return typeof result === "string" ? result : result.text;
    },
  };
  rememberAgentTool(tool, identity);
  return tool;
}

const agentToolPlaces = [
  "options.delegation",
  "the tool's toolsContext entry (.delegation)",
  "runtimeContext.delegation (tools see it only through hopguardToolApproval)",
];

function run(agent: SubAgent, request: AgentRequest): PromiseLike<string | { text: string }> {
  if (typeof agent === "function") return agent(request);
  const { prompt, abortSignal } = request;
  return agent.generate(abortSignal === undefined ? { prompt } : { prompt, abortSignal });
}
