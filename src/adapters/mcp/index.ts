export { type GuardMcpClientOptions, guardMcpClient, type McpApprovalRequest } from "./guard-mcp-client.ts";
