// Authorizing tool calls
export {
  type HopguardToolApproval,
  type HopguardToolApprovalOptions,
  hopguardToolApproval,
  type ToolApprovalRequestInput,
} from "./tool-approval.ts";
export { type GuardToolsOptions, guardTools } from "./guard-tools.ts";
export {
  type HopguardApprovalTrail,
  type HopguardApprovalTrailOptions,
  hopguardApprovalTrail,
} from "./approval-trail.ts";
export type { ApprovalSecret } from "./approval-signature.ts";
export { type CallableToolSetOptions, callableToolSet } from "./callable-tool-set.ts";

// Sub-agents
export {
  type AgentRequest,
  type AgentToolInput,
  type AgentToolOptions,
  agentTool,
  type GeneratingAgent,
  type SubAgent,
} from "./agent-tool.ts";

// Where the chain and the tool names come from
export type { DelegationContext } from "./delegation-context.ts";
export type { ToolTarget } from "../../cerbos-request.ts";
export type { ToolTargetOptions } from "./tool-target.ts";
