import type { Tool } from "ai";
import type { AgentInput } from "../../delegation.ts";

// Tools made by agentTool, with the agent they delegate to. Kept by identity: a copy of such a tool is an ordinary
// tool again and gets checked like one, which fails closed.
const agents = new WeakMap<object, AgentInput>();

/** Marks `tool` as authorizing itself by delegating to `agent` when called. */
export function rememberAgentTool(tool: Tool, agent: AgentInput): void {
  agents.set(tool, agent);
}

/** The agent an `agentTool` delegates to, or `undefined` for any other tool. */
export function agentOf(tool: unknown): AgentInput | undefined {
  return typeof tool === "object" && tool !== null ? agents.get(tool) : undefined;
}
