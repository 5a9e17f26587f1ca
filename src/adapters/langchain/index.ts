export {
  type AgentRequest,
  type AgentToolOptions,
  agentTool,
  type InvocableAgent,
  type SubAgent,
} from "./agent-tool.ts";
export type { ApprovalCall, ApprovalInterrupt } from "./approval-interrupt.ts";
export { type CallableToolsOptions, callableTools } from "./callable-tools.ts";
export { type GuardToolsOptions, guardTools } from "./guard-tools.ts";
export { type HopguardMiddlewareOptions, hopguardMiddleware } from "./middleware.ts";
export type { HopguardContext, ToolGuardOptions } from "./options.ts";
export type { ToolTarget } from "../../cerbos-request.ts";
export type { ToolTargetOptions } from "./tool-target.ts";
