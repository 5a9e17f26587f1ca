import { type FSWatcher, watch } from "node:fs";
import { relative, resolve } from "node:path";
import { bundledPolicyDir, startLocalPdp } from "../local-pdp.ts";
import { cerbosCompile, compileVerdict } from "./cerbos-compile.ts";
import { ExitCode } from "./cli-error.ts";

/** Options of `hopguard pdp`. */
export interface PdpOptions {
  readonly policies: string;
  readonly auditLog?: string | undefined;
}

/** How long a burst of file changes (an editor's save, a `git checkout`) is let settle before it is reported. */
const settleMs = 250;

/**
 * `hopguard pdp`: starts a local Cerbos PDP on a policy folder that reloads it on every change (Cerbos's own disk
 * watch), prints its addresses, says whether each change compiles, and stops the PDP on SIGINT or SIGTERM.
 */
export async function pdpCommand(options: PdpOptions): Promise<number> {
  const folder = resolve(options.policies);
  const pdp = await startLocalPdp({
    policyDir: folder,
    auditLogFile: options.auditLog,
    set: { "storage.disk.watchForChanges": true },
  });
  const out = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };
  out(
    `Cerbos PDP serving ${pdp.policyDir}${pdp.policyDir === bundledPolicyDir ? " (the demo policies bundled with hopguard)" : ""}`,
  );
  out(`  gRPC  ${pdp.grpcAddress}`);
  out(`  HTTP  ${pdp.httpAddress}`);
  out(`  pid   ${pdp.pid}`);
  out("Reloads the policies when they change. Ctrl-C stops it.");

  let watcher: FSWatcher | undefined;
  let timer: NodeJS.Timeout | undefined;
  const changed = new Set<string>();
  try {
    watcher = watch(folder, { recursive: true }, (_event, file) => {
      // Editors and tools write temporary files beside the policies: only policy files are worth a word.
      if (file === null || !/\.(?:ya?ml|json)$/i.test(String(file))) return;
      changed.add(String(file));
      clearTimeout(timer);
      timer = setTimeout(() => void report(), settleMs);
    });
  } catch {
    out("(this platform cannot watch the folder: Cerbos still reloads, but changes are not reported here)");
  }
  const report = async (): Promise<void> => {
    const files = [...changed].map((file) => relative(folder, resolve(folder, file))).join(", ");
    changed.clear();
    const result = await cerbosCompile(folder, { skipTests: true }).catch((error: Error) => ({
      status: -1,
      output: error.message,
    }));
    if (result.status === 0) {
      out(`changed: ${files} — the policies compile; the PDP reloads them`);
    } else {
      out(`changed: ${files} — ${compileVerdict(result.status)}; the PDP keeps the policies it had:\n${result.output}`);
    }
  };

  // The PDP process does not keep this one alive (hopguard unrefs it): this wait does, until a signal ends it or
  // the PDP itself is gone (killed, crashed), which ends the command too.
  let watchdog: NodeJS.Timeout | undefined;
  const ended = await new Promise<NodeJS.Signals | "exited">((settle) => {
    process.once("SIGINT", () => settle("SIGINT"));
    process.once("SIGTERM", () => settle("SIGTERM"));
    watchdog = setInterval(() => {
      if (!isRunning(pdp.pid)) settle("exited");
    }, 1000);
  });
  clearInterval(watchdog);
  clearTimeout(timer);
  watcher?.close();
  await pdp.stop();
  if (ended === "exited") {
    process.stderr.write(`hopguard: the PDP (pid ${pdp.pid}) exited on its own\n`);
    return ExitCode.failed;
  }
  out(`${ended}: the PDP (pid ${pdp.pid}) stopped`);
  return ExitCode.ok;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
