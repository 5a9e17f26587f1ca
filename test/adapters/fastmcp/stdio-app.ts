// A guarded FastMCP "filesystem" app on stdio, for tests that spawn it as a child process:
//   node test/adapters/fastmcp/stdio-app.ts
// Configured by environment: HOPGUARD_PDP (gRPC address), HOPGUARD_JWKS (the agent host's public keys, JSON),
// HOPGUARD_LOG (a file the app's code appends what it ran to, one JSON line each), HOPGUARD_USER (the person
// FastMCP's `authenticate` recognises on stdio, JSON; absent: none).
import { appendFileSync } from "node:fs";
import { GRPC } from "@cerbos/grpc";
import { FastMCP } from "fastmcp";
import { guardFastMCP } from "../../../src/adapters/fastmcp/index.ts";
import { createTokenVerifier } from "../../../src/index.ts";
import { tokenIssuer } from "../../support/token-keys.ts";
import { type PersonAuth, quietLogger, registerFilesystem } from "./filesystem-app.ts";

const { HOPGUARD_PDP, HOPGUARD_JWKS, HOPGUARD_LOG, HOPGUARD_USER } = process.env;
if (HOPGUARD_PDP === undefined || HOPGUARD_JWKS === undefined || HOPGUARD_LOG === undefined) {
  throw new Error("set HOPGUARD_PDP, HOPGUARD_JWKS and HOPGUARD_LOG");
}
const log = HOPGUARD_LOG;
const app = guardFastMCP(
  new FastMCP<PersonAuth>({
    name: "filesystem",
    version: "1.0.0",
    logger: quietLogger(true), // stdout is the MCP transport
    authenticate: async () => (HOPGUARD_USER === undefined ? undefined : { person: JSON.parse(HOPGUARD_USER) }),
  }),
  {
    server: "filesystem",
    client: new GRPC(HOPGUARD_PDP, { tls: false }),
    tokens: createTokenVerifier({ keys: JSON.parse(HOPGUARD_JWKS), audience: "filesystem", issuer: tokenIssuer }),
    user: (auth) => auth.person,
  },
);
registerFilesystem(app, (execution) => appendFileSync(log, `${JSON.stringify(execution)}\n`));
await app.start({ transportType: "stdio" });
