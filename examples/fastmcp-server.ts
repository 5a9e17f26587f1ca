// A guarded FastMCP server over Streamable HTTP: every tool call, listing, resource read and prompt is decided by
// Cerbos for every hop of the chain it acts for, whether or not the client is guarded. A request acts for the user
// FastMCP's `authenticate` recognised, or for the chain in the delegation token it carries in
// params._meta["hopguard.dev/delegation"] (verified, then re-authorized hop by hop on this server's PDP).
//   npm run build && node examples/fastmcp-server.ts        (PORT=3000 to pick the port)
import { createServer } from "node:net";
import { FastMCP } from "fastmcp";
import { type ActorInput, createGuard, createTokenSigner, createTokenVerifier } from "hopguard";
import { guardFastMCP } from "hopguard/fastmcp";
import { startLocalPdp } from "hopguard/local-pdp";
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

// FastMCP's own idiom: `authenticate` turns each HTTP request into the session's auth (undefined answers 401).
const app = new FastMCP<{ person: ActorInput }>({
  name: "filesystem",
  version: "1.0.0",
  authenticate: async (request) => {
    const person = people[/^Bearer (\S+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? ""];
    return person === undefined ? undefined : { person };
  },
});
// Guard it before adding anything: from here on, every session lists, runs, reads and gets only what its chain may.
guardFastMCP(app, {
  server: "filesystem",
  client: pdp.client,
  tokens: createTokenVerifier({ keys: publicKey, audience: "filesystem", issuer: "example-agent-host" }),
  user: (auth) => auth.person,
});

app.addTool({
  name: "read_file",
  description: "Read a file",
  parameters: z.object({ path: z.string() }),
  annotations: { readOnlyHint: true },
  execute: async ({ path }) => `(the contents of ${path})`,
});
app.addTool({
  name: "write_file",
  description: "Write a file",
  parameters: z.object({ path: z.string(), content: z.string() }),
  annotations: { destructiveHint: true },
  execute: async ({ path }) => `wrote ${path}`,
});
for (const uri of ["file:///workspace/alice/notes.md", "file:///workspace/bob/pipeline.md", "docs://sales/playbook"]) {
  app.addResource({ name: uri, uri, mimeType: "text/markdown", load: async () => ({ text: `(the text of ${uri})` }) });
}
app.addPrompt({
  name: "code_review",
  description: "Review the current change",
  load: async () => "Review this change.",
});

// FastMCP listens where it is told; with no PORT, find a free one.
const port = Number(process.env.PORT ?? 0) || (await freePort());
await app.start({ transportType: "httpStream", httpStream: { port, host: "127.0.0.1" } });

// What an agent host does to act for alice through her planner agent: delegate, then sign the chain for this server.
const host = createGuard({ client: pdp.client });
const planner = await host
  .forUser(people["alice-demo-key"] as ActorInput)
  .delegate({ id: "planner", roles: ["agent", "planner"] });
const signer = createTokenSigner({ key: privateKey, issuer: "example-agent-host" });
const plannerToken = await planner.toToken(signer, { audience: "filesystem", ttlSeconds: 300 });

printConnectInstructions("guarded FastMCP server", port, plannerToken);

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return typeof address === "object" && address !== null ? address.port : 0;
}

const stop = async () => {
  await app.stop();
  await pdp.stop();
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
