// A guarded MCP server over Streamable HTTP: every request — tool calls, listings, resource reads, prompts,
// completions — is decided by Cerbos for every hop of the chain it acts for, whether or not the client is guarded.
// A request acts for the user its bearer token authenticates, or for the chain in the delegation token it carries
// in params._meta["hopguard.dev/delegation"] (verified, then re-authorized hop by hop on this server's PDP).
//   npm run build && node examples/mcp-server.ts        (PORT=3000 to pick the port)
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { type ActorInput, createGuard, createTokenSigner, createTokenVerifier } from "hopguard";
import { startLocalPdp } from "hopguard/local-pdp";
import { guardMcpServer } from "hopguard/mcp";
import { generateKeyPair } from "jose";
import { z } from "zod";
import { printConnectInstructions } from "./support/connect-instructions.ts";

// Who each bearer token belongs to. In production: your OAuth resource server's token verification.
const people: Record<string, ActorInput> = {
  "alice-demo-key": {
    id: "alice",
    roles: ["user"],
    attr: { department: "engineering", workspace: "/workspace/alice" },
  },
  "bob-demo-key": { id: "bob", roles: ["user"], attr: { department: "sales", workspace: "/workspace/bob" } },
};

const pdp = await startLocalPdp(); // the policies in policies/; point the guard at your PDP in production
// The agent host's signing key. In production the host keeps the private key; this server needs only the public one.
const { privateKey, publicKey } = await generateKeyPair("Ed25519");
const tokens = createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: "example-agent-host" });

/** One MCP server per session, each guarded. */
function filesystemServer(): McpServer {
  const server = new McpServer({ name: "filesystem", version: "1.0.0" });
  guardMcpServer(server, {
    server: "filesystem",
    client: pdp.client,
    tokens,
    user: (authInfo) => Object.values(people).find((person) => person.id === authInfo.clientId),
  });
  server.registerTool(
    "read_file",
    { description: "Read a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
    async ({ path }) => ({ content: [{ type: "text", text: `(the contents of ${path})` }] }),
  );
  server.registerTool(
    "write_file",
    {
      description: "Write a file",
      inputSchema: { path: z.string(), content: z.string() },
      annotations: { destructiveHint: true },
    },
    async ({ path }) => ({ content: [{ type: "text", text: `wrote ${path}` }] }),
  );
  for (const uri of [
    "file:///workspace/alice/notes.md",
    "file:///workspace/bob/pipeline.md",
    "docs://sales/playbook",
  ]) {
    server.registerResource(uri, uri, { mimeType: "text/markdown" }, async (url) => ({
      contents: [{ uri: url.href, text: `(the text of ${url.href})` }],
    }));
  }
  server.registerPrompt("code_review", { description: "Review the current change" }, async () => ({
    messages: [{ role: "user", content: { type: "text", text: "Review this change." } }],
  }));
  return server;
}

const sessions = new Map<string, StreamableHTTPServerTransport>();
const http = createServer(async (req: IncomingMessage & { auth?: AuthInfo }, res) => {
  // Bearer auth, done by this server itself: the SDK hands `req.auth` to every handler as `extra.authInfo`.
  const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
  const person = people[bearer];
  if (person === undefined) {
    res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"' }).end();
    return;
  }
  req.auth = { token: bearer, clientId: person.id, scopes: [], expiresAt: Math.floor(Date.now() / 1000) + 3600 };
  const sessionId = req.headers["mcp-session-id"];
  let transport = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
  if (transport === undefined) {
    const created = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableDnsRebindingProtection: true,
      allowedHosts: [`127.0.0.1:${port}`, `localhost:${port}`],
      onsessioninitialized: (id) => {
        sessions.set(id, created);
      },
    });
    created.onclose = () => {
      if (created.sessionId !== undefined) sessions.delete(created.sessionId);
    };
    await filesystemServer().connect(created);
    transport = created;
  }
  await transport.handleRequest(req, res);
});
await new Promise<void>((resolve) => http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", resolve));
const port = (http.address() as AddressInfo).port;

// What an agent host does to act for alice through her planner agent: delegate, then sign the chain for this server.
const host = createGuard({ client: pdp.client });
const planner = await host
  .forUser(people["alice-demo-key"] as ActorInput)
  .delegate({ id: "planner", roles: ["agent", "planner"] });
const signer = createTokenSigner({ key: privateKey, issuer: "example-agent-host" });
const plannerToken = await planner.toToken(signer, { audience: "filesystem", ttlSeconds: 300 });

printConnectInstructions("guarded MCP server", port, plannerToken);

const stop = async () => {
  http.closeAllConnections();
  http.close();
  await pdp.stop();
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
