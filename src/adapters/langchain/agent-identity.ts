// Tools made by agentTool. They authorize themselves — every hop must allow the delegation before the sub-agent runs,
// and every tool it calls is checked for the longer chain — so the other entry points leave them alone. Kept by
// identity: a copy of such a tool is an ordinary tool again, has no server to name, and is refused (fails closed).
const agentTools = new WeakSet<object>();

/** Marks `tool` as one that authorizes itself by delegating when called. */
export function rememberAgentTool(tool: object): void {
  agentTools.add(tool);
}

/** Whether `tool` was made by {@link agentTool}. */
export function isAgentTool(tool: unknown): boolean {
  return typeof tool === "object" && tool !== null && agentTools.has(tool);
}
