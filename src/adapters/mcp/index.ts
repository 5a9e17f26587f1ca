export { type GuardMcpClientOptions, guardMcpClient } from "./guard-mcp-client.ts";
export type { McpApprovalAnswer, McpApprovalRequest, McpApprover } from "./ask-approval.ts";
export {
  type DelegationTokenTransport,
  type DelegationTokenTransportOptions,
  delegationMetaKey,
  delegationTokenTransport,
} from "./token-transport.ts";
export { type GuardMcpServerOptions, guardMcpServer } from "./server/guard-mcp-server.ts";
export type { McpRefusal } from "./server/refusals.ts";
export type { McpUserResolver } from "./server/request-principal.ts";
