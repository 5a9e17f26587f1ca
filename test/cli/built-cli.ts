import { execFile, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The `hopguard` bin as npm installs it: `dist/cli/main.js` of a built package, run by Node. */
export interface BuiltCli {
  /** The built `dist/cli/main.js`. */
  readonly bin: string;
  /** Runs `hopguard <args…>` to its end. */
  run(args: readonly string[], options?: RunOptions): Promise<CliRun>;
  /** Starts `hopguard <args…>` and leaves it running (for `hopguard pdp`). */
  start(args: readonly string[], options?: RunOptions): RunningCli;
  /** Removes the build. */
  remove(): void;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv | undefined;
  readonly cwd?: string | undefined;
}

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunningCli {
  readonly pid: number;
  /** Everything printed on stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the output matches `pattern`, with the match; rejects if the process ends first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Resolves with the exit code (or signal) once the process has ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Builds the package's sources with its own build settings (tsconfig.build.json) into a folder of its own under
 * node_modules/.cache — never dist/, which the examples test builds — next to a copy of package.json, so that the
 * bin finds its dependencies and its version as an installed package does.
 */
export async function buildCli(): Promise<BuiltCli> {
  mkdirSync(join(root, "node_modules/.cache"), { recursive: true });
  const folder = mkdtempSync(join(root, "node_modules/.cache/hopguard-cli-test-"));
  try {
    const tsconfig = join(folder, "tsconfig.json");
    writeFileSync(
      tsconfig,
      JSON.stringify({
        extends: join(root, "tsconfig.build.json"),
        compilerOptions: {
          rootDir: join(root, "src"),
          outDir: join(folder, "dist"),
          declaration: false,
          declarationMap: false,
          sourceMap: false,
          inlineSources: false,
        },
        // The bin and what it imports: files other work in progress may be changing are not its business.
        include: [],
        files: [join(root, "src/cli/main.ts")],
      }),
    );
    await promisify(execFile)(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", tsconfig], {
      cwd: root,
    });
    copyFileSync(join(root, "package.json"), join(folder, "package.json"));
  } catch (error) {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
  const bin = join(folder, "dist/cli/main.js");
  const start = (args: readonly string[], options: RunOptions = {}): RunningCli => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? root,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const waiting = new Set<() => void>();
    const onOutput = () => {
      for (const check of waiting) check();
    };
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
      onOutput();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      onOutput();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((settle) =>
      child.once("close", (code, signal) => settle({ code, signal })),
    );
    return {
      pid: child.pid as number,
      stdout: () => stdout,
      stderr: () => stderr,
      exited,
      waitFor: (pattern) =>
        new Promise((settle, fail) => {
          const check = () => {
            const match = pattern.exec(stdout);
            if (match === null) return;
            waiting.delete(check);
            settle(match);
          };
          waiting.add(check);
          check();
          void exited.then(() => {
            if (!waiting.has(check)) return;
            waiting.delete(check);
            fail(new Error(`hopguard ended before printing ${pattern}:\n${stdout}\n${stderr}`));
          });
        }),
    };
  };
  return {
    bin,
    start,
    async run(args, options) {
      const running = start(args, options);
      const { code } = await running.exited;
      return { code, stdout: running.stdout(), stderr: running.stderr() };
    },
    remove: () => rmSync(folder, { recursive: true, force: true }),
  };
}
