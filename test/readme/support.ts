// Shared by the README blocks' set-ups (see CONTRIBUTING.md, "README blocks"). A block runs in its own Node process
// inside an application that installed the packed hopguard; its working folder is removed after the run.
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { GRPC } from "@cerbos/grpc";
import { createGuard, type Delegation, type Guard } from "hopguard";

/** The run's shared PDP (vitest's global setup started it with the repo's policies/), as a fresh gRPC client. */
export function sharedPdp(): GRPC {
  const address = process.env.HOPGUARD_README_PDP;
  if (address === undefined) throw new Error("HOPGUARD_README_PDP (the shared PDP's gRPC address) is not set");
  return new GRPC(address, { tls: false });
}

/** alice's workspace: a folder of this block's working directory holding notes.md. */
export function aliceWorkspace(): string {
  const workspace = join(process.cwd(), "workspace");
  mkdirSync(workspace, { recursive: true });
  writeFileSync(join(workspace, "notes.md"), "Launch moved to Thursday.\n");
  return realpathSync(workspace);
}

/** What "The core" builds: a guard on the shared PDP and the chain alice → planner → researcher. */
export async function coreChain(workspace: string): Promise<{ guard: Guard; researcher: Delegation }> {
  const guard = createGuard({ client: sharedPdp() });
  const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { department: "engineering", workspace } });
  const planner = await alice.delegate({ id: "planner", roles: ["agent", "planner"] });
  const researcher = await planner.delegate({
    id: "researcher",
    roles: ["agent", "researcher"],
    scope: { tools: ["filesystem/read_*"], expiresAt: Date.now() + 15 * 60_000 },
  });
  return { guard, researcher };
}
