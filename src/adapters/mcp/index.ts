export { type GuardMcpClientOptions, guardMcpClient } from "./guard-mcp-client.ts";
export type { McpApprovalAnswer, McpApprovalRequest, McpApprover } from "./ask-approval.ts";
