import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";

/** A Streamable HTTP MCP endpoint on loopback. */
export interface HttpMcp {
  readonly url: URL;
  /** Requests refused before reaching MCP: no bearer token, or one `authenticate` did not know. */
  readonly unauthorized: number;
  close(): Promise<void>;
}

/**
 * Serves MCP over Streamable HTTP on `127.0.0.1` (a free port), one `makeServer()` per session, behind bearer auth
 * that this code verifies itself and hands on as `req.auth`, which the SDK passes to handlers as `extra.authInfo`.
 */
export async function startHttpMcp(options: {
  makeServer: () => { connect(transport: Transport): Promise<void>; close(): Promise<void> };
  authenticate: (bearer: string) => AuthInfo | undefined;
}): Promise<HttpMcp> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const servers: { close(): Promise<void> }[] = [];
  let unauthorized = 0;
  let port = 0;
  const http = createServer(async (req: IncomingMessage & { auth?: AuthInfo }, res) => {
    const bearer = /^Bearer (\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const auth = bearer === undefined ? undefined : options.authenticate(bearer);
    if (auth === undefined) {
      unauthorized++;
      res.writeHead(401, { "WWW-Authenticate": 'Bearer error="invalid_token"' }).end();
      return;
    }
    req.auth = auth;
    const sessionId = req.headers["mcp-session-id"];
    let transport = typeof sessionId === "string" ? sessions.get(sessionId) : undefined;
    if (transport === undefined) {
      if (sessionId !== undefined) {
        res.writeHead(404).end();
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableDnsRebindingProtection: true,
        allowedHosts: [`127.0.0.1:${port}`],
        onsessioninitialized: (id) => {
          sessions.set(id, created);
        },
      });
      const server = options.makeServer();
      servers.push(server);
      await server.connect(created);
      transport = created;
    }
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  port = (http.address() as AddressInfo).port;
  return {
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    get unauthorized() {
      return unauthorized;
    },
    async close() {
      await Promise.all(servers.map((server) => server.close()));
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
