// A guarded MCP "filesystem" server on stdio, for tests that spawn it as a child process:
//   node test/support/guarded-stdio-server.ts
// Configured by environment: HOPGUARD_PDP (gRPC address), HOPGUARD_JWKS (the agent host's public keys, JSON),
// HOPGUARD_LOG (a file each handler appends the execution it ran to, one JSON line each).
import { appendFileSync } from "node:fs";
import { GRPC } from "@cerbos/grpc";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { guardMcpServer } from "../../src/adapters/mcp/index.ts";
import { createTokenVerifier } from "../../src/index.ts";
import { filesystemServer } from "./guarded-server.ts";
import { tokenIssuer } from "./token-keys.ts";

const { HOPGUARD_PDP, HOPGUARD_JWKS, HOPGUARD_LOG } = process.env;
if (HOPGUARD_PDP === undefined || HOPGUARD_JWKS === undefined || HOPGUARD_LOG === undefined) {
  throw new Error("set HOPGUARD_PDP, HOPGUARD_JWKS and HOPGUARD_LOG");
}
const log = HOPGUARD_LOG;
const { server } = filesystemServer({ record: (execution) => appendFileSync(log, `${JSON.stringify(execution)}\n`) });
guardMcpServer(server, {
  server: "filesystem",
  client: new GRPC(HOPGUARD_PDP, { tls: false }),
  tokens: createTokenVerifier({ keys: JSON.parse(HOPGUARD_JWKS), audience: "filesystem", issuer: tokenIssuer }),
});
await server.connect(new StdioServerTransport());
