import { spawn } from "node:child_process";
import { cerbosBinaryPath } from "../local-pdp.ts";

/** What `cerbos compile` said about a policy folder. */
export interface CompileResult {
  /** Cerbos's exit code: `0` compiled and every test passed, `3` a policy did not compile, `4` a test failed. */
  readonly status: number;
  /** What it printed, stdout and stderr together. */
  readonly output: string;
}

/** Compiles a policy folder and runs its `*_test.yaml` suites with the Cerbos binary hopguard's local PDP uses. */
export async function cerbosCompile(folder: string, options: { skipTests?: boolean } = {}): Promise<CompileResult> {
  const args = ["compile", "--color=never", ...(options.skipTests === true ? ["--skip-tests"] : []), folder];
  const child = spawn(cerbosBinaryPath(), args, {
    env: { ...process.env, CERBOS_NO_TELEMETRY: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
  });
  const status = await new Promise<number>((settle, fail) => {
    child.once("error", fail);
    child.once("close", (code) => settle(code ?? 1));
  });
  return { status, output: output.trim() };
}

/** Says in words what a `cerbos compile` exit code means. */
export function compileVerdict(status: number): string {
  if (status === 0) return "the policies compile and every test passes";
  if (status === 3) return "a policy does not compile";
  if (status === 4) return "a policy test fails";
  return `cerbos compile failed (exit code ${status})`;
}
