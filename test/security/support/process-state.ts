import { readFileSync } from "node:fs";

/** The kernel's one-letter state of a process (`R`, `S`, `T` stopped, `Z` zombie…), or `undefined` once it is reaped. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs` saying what it waited for. */
export async function until(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((settle) => setTimeout(settle, 10));
  }
}

/** Waits until the process is stopped (SIGSTOP took effect), so nothing it does can slip out any more. */
export function untilStopped(pid: number): Promise<void> {
  return until(`process ${pid} is stopped`, () => processState(pid) === "T");
}

/** Waits until the process is running again after SIGCONT. */
export function untilResumed(pid: number): Promise<void> {
  return until(`process ${pid} is running`, () => {
    const state = processState(pid);
    return state !== undefined && state !== "T";
  });
}

/** Waits until the process is dead: a zombie, or already reaped. Its sockets are closed by then. */
export function untilDead(pid: number): Promise<void> {
  return until(`process ${pid} is dead`, () => {
    const state = processState(pid);
    return state === undefined || state === "Z" || state === "X";
  });
}
