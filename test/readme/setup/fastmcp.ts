// What the FastMCP block uses without defining it.
import { writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { ActorInput } from "hopguard";
import { generateKeyPair } from "jose";
import { sharedPdp } from "../support.ts";

// The block runs in a working folder of its own, removed afterwards: alice's workspace.
const workspace = process.cwd();
export const alicesFile = join(workspace, "notes.md");
writeFileSync(alicesFile, "alice's notes");
export const serverPdpClient = sharedPdp(); // verified with new GRPC(process.env.HOPGUARD_README_PDP, { tls: false })
export const { publicKey: agentHostPublicKeys } = await generateKeyPair("Ed25519");
export const directory: Record<string, ActorInput> = {
  "alice-key": { id: "alice", roles: ["user"], attr: { department: "engineering", workspace } },
  "bob-key": { id: "bob", roles: ["user"], attr: { department: "sales", workspace: "/workspace/bob" } },
};
export const port = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, "127.0.0.1", () => {
    const { port } = probe.address() as { port: number };
    probe.close(() => resolve(port));
  });
});
