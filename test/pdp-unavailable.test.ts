import { readFileSync } from "node:fs";
import { GRPC } from "@cerbos/grpc";
import { describe, expect, test } from "vitest";
import { createGuard, decideToolCall, type PdpClient, PdpUnavailableError } from "../src/index.ts";
import { startLocalPdp } from "../src/local-pdp.ts";
import { alice, planner } from "./support/users.ts";

const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };

async function failure(attempt: Promise<unknown>): Promise<PdpUnavailableError> {
  const error = await attempt.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(PdpUnavailableError.isInstance(error), `expected PdpUnavailableError, got ${String(error)}`).toBe(true);
  return error as PdpUnavailableError;
}

/** Waits until the kernel reports the process as stopped ("T"), so no answer can slip out after SIGSTOP. */
async function untilStopped(pid: number): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    await new Promise((settle) => setTimeout(settle, 10));
  }
  throw new Error(`process ${pid} did not stop`);
}

describe("fail closed", () => {
  test("a PDP that was stopped is unreachable: authorize and delegate throw, never allow", async () => {
    const pdp = await startLocalPdp();
    const guard = createGuard({ client: pdp.client });
    const chain = await guard.forUser(alice).delegate(planner);
    expect((await chain.authorize(readNotes)).allowed).toBe(true);

    await pdp.stop();
    const stoppedClient = new GRPC(pdp.grpcAddress, { tls: false });
    const afterStop = createGuard({ client: stoppedClient }).forUser(alice);
    try {
      const error = await failure(afterStop.authorize(readNotes));
      expect(["unreachable", "timeout"]).toContain(error.failure);
      await failure(afterStop.delegate(planner));
      const outcome = await decideToolCall(afterStop, readNotes);
      expect(outcome.type).toBe("denied");
    } finally {
      stoppedClient.close();
    }
  });

  test("a PDP that is too slow times out after timeoutMs", async () => {
    const pdp = await startLocalPdp();
    const guard = createGuard({ client: pdp.client, timeoutMs: 300 });
    const root = guard.forUser(alice);
    expect((await root.authorize(readNotes)).allowed).toBe(true);
    // Freeze the real PDP: connections stay open, answers never come.
    process.kill(pdp.pid, "SIGSTOP");
    try {
      await untilStopped(pdp.pid);
      const error = await failure(root.authorize(readNotes));
      expect(error.failure).toBe("timeout");
      expect(error.message).toContain("300 ms");
    } finally {
      process.kill(pdp.pid, "SIGCONT");
      await pdp.stop();
    }
  });

  test("the caller's abort signal aborts the checks, and that is not an allow either", async () => {
    const pdp = await startLocalPdp();
    try {
      const root = createGuard({ client: pdp.client }).forUser(alice);
      const error = await failure(root.authorize(readNotes, { signal: AbortSignal.abort() }));
      expect(error.failure).toBe("aborted");
    } finally {
      await pdp.stop();
    }
  });

  test("one erroring hop fails the whole decision even when the others allow", async () => {
    const pdp = await startLocalPdp();
    try {
      let calls = 0;
      const flaky: PdpClient = {
        checkResources: async (request, options) => {
          calls++;
          if (request.principal.id === "planner") throw new Error("connection reset by peer");
          return pdp.client.checkResources(request, options);
        },
        planResources: (request, options) => pdp.client.planResources(request, options),
      };
      const chain = await createGuard({ client: pdp.client }).forUser(alice).delegate(planner);
      // Rebuild the same chain on the flaky client: the delegate check goes through the user hop only.
      const flakyChain = await createGuard({ client: flaky }).forUser(alice).delegate(planner);
      calls = 0;
      const error = await failure(flakyChain.authorize(readNotes));
      expect(error.failure).toBe("error");
      expect(error.message).toContain('agent "planner"');
      expect(calls).toBe(2);
      expect((await chain.authorize(readNotes)).allowed).toBe(true);
    } finally {
      await pdp.stop();
    }
  });
});
