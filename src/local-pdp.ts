import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { statSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GRPC } from "@cerbos/grpc";
import { LocalPdpError } from "./errors.ts";

/**
 * The demo policy pack bundled with hopguard (`node_modules/hopguard/policies`): derived roles for chains, the
 * `agent` delegation policy and the `mcp::filesystem`, `mcp::memory` and `mcp::notes` policies the examples use.
 * {@link startLocalPdp} serves it when no `policyDir` is given. Copy it as a starting point; do not serve it as is.
 */
export const bundledPolicyDir: string = fileURLToPath(new URL("../policies", import.meta.url));

/** Options for {@link startLocalPdp}. */
export interface LocalPdpOptions {
  /**
   * The folder of Cerbos policies to serve. `*_test.yaml` files and `testdata/` folders in it are ignored by the
   * server. Your application's policies belong here (`npx hopguard init` writes a starter set).
   *
   * @defaultValue {@link bundledPolicyDir}: the demo policies bundled with hopguard, `node_modules/hopguard/policies`
   */
  policyDir?: string | URL | undefined;
  /**
   * Write Cerbos's access and decision audit logs (JSON lines) to this file. Each hop's entry carries the request id
   * hopguard sent, which is the trace id of the decision span.
   *
   * @defaultValue no audit log
   */
  auditLogFile?: string | undefined;
  /**
   * Extra Cerbos configuration, each passed as `--set=key=value`, e.g. `{ "engine.defaultPolicyVersion": "v2" }`.
   *
   * @defaultValue none
   */
  set?: Readonly<Record<string, string | number | boolean>> | undefined;
  /**
   * How long to wait for the PDP to report healthy.
   *
   * @defaultValue `15000`
   */
  startupTimeoutMs?: number | undefined;
  /**
   * The Cerbos binary to run.
   *
   * @defaultValue the native binary npm installed with the `cerbos` package for this platform
   */
  binaryPath?: string | undefined;
}

/** A running Cerbos PDP on loopback, owned by this process. */
export interface LocalPdp extends AsyncDisposable {
  /** `host:port` of the gRPC API, for `new GRPC(address, { tls: false })`. */
  readonly grpcAddress: string;
  /** `http://host:port` of the HTTP API. */
  readonly httpAddress: string;
  /** A gRPC client connected to this PDP; closed by {@link LocalPdp.stop}. */
  readonly client: GRPC;
  /** The PDP's process id. */
  readonly pid: number;
  /** The absolute path of the policy folder it serves ({@link bundledPolicyDir} unless `policyDir` was given). */
  readonly policyDir: string;
  /** Stops the PDP and closes the client. Safe to call more than once. */
  stop(): Promise<void>;
}

const outputLimit = 16_384;
const portAttempts = 3;

/**
 * Starts a real Cerbos PDP from the binary npm installed, on free loopback ports, and waits until it is healthy.
 *
 * @remarks
 * For development, tests and demos; in production point `createGuard` at a PDP you run (a service or a sidecar).
 * Without `policyDir` it serves the demo policies bundled with hopguard ({@link bundledPolicyDir},
 * `node_modules/hopguard/policies`), which is what the examples need and not what your application wants. The PDP is killed when this process exits, even by a signal or `SIGKILL`: a
 * small watchdog notices the parent is gone. A policy that does not compile, a missing binary or a PDP that never
 * gets healthy rejects with a {@link LocalPdpError} that quotes Cerbos's own message.
 *
 * @example
 * ```ts
 * import { createGuard } from "hopguard";
 * import { startLocalPdp } from "hopguard/local-pdp";
 *
 * await using pdp = await startLocalPdp({ policyDir: new URL("./policies/", import.meta.url) }); // your policies
 * const guard = createGuard({ client: pdp.client });
 * ```
 */
export async function startLocalPdp(options: LocalPdpOptions = {}): Promise<LocalPdp> {
  const { auditLogFile, set = {}, startupTimeoutMs = 15_000 } = options;
  const policyDir = resolvePolicyDir(options.policyDir ?? bundledPolicyDir);
  const binaryPath = options.binaryPath ?? cerbosBinaryPath();
  const settings: Record<string, string | number | boolean> = {
    "storage.driver": "disk",
    "storage.disk.directory": policyDir,
    // A changed policy is served without a restart; a guard's plan cache watching the same folder drops its plans.
    "storage.disk.watchForChanges": true,
    ...(auditLogFile === undefined
      ? {}
      : {
          "audit.enabled": true,
          "audit.backend": "file",
          "audit.file.path": resolve(auditLogFile),
          "audit.accessLogsEnabled": true,
          "audit.decisionLogsEnabled": true,
        }),
    ...set,
  };

  for (let attempt = 1; ; attempt++) {
    const [grpcPort = 0, httpPort = 0] = await freePorts(2);
    try {
      return await launch({ binaryPath, settings, grpcPort, httpPort, startupTimeoutMs, policyDir });
    } catch (error) {
      // Another process may take a port between our probe and Cerbos's bind; only that is worth a retry.
      const portTaken = LocalPdpError.isInstance(error) && /address already in use/i.test(error.output);
      if (!portTaken || attempt === portAttempts) throw error;
    }
  }
}

/**
 * The path of the native Cerbos binary for this platform, installed by the `cerbos` npm package.
 * Spawning it directly (not the package's Node wrapper) saves a Node process and lets signals reach Cerbos.
 */
export function cerbosBinaryPath(): string {
  const platformPackage = `@cerbos/cerbos-${process.platform}-${process.arch}`;
  try {
    const cerbosPackage = createRequire(import.meta.url).resolve("cerbos/package.json");
    const platformManifest = createRequire(cerbosPackage).resolve(`${platformPackage}/package.json`);
    return join(dirname(platformManifest), `cerbos-${process.platform}-${process.arch}`);
  } catch (error) {
    throw new LocalPdpError(
      "local_pdp_binary_not_found",
      `cannot find the Cerbos binary (${platformPackage}): install the "cerbos" package with its optional dependencies`,
      "",
      { cause: error },
    );
  }
}

interface LaunchPlan {
  binaryPath: string;
  settings: Record<string, string | number | boolean>;
  grpcPort: number;
  httpPort: number;
  startupTimeoutMs: number;
  policyDir: string;
}

async function launch(plan: LaunchPlan): Promise<LocalPdp> {
  const grpcAddress = `127.0.0.1:${plan.grpcPort}`;
  const httpAddress = `http://127.0.0.1:${plan.httpPort}`;
  const args = [
    "server",
    ...Object.entries({
      ...plan.settings,
      "server.grpcListenAddr": grpcAddress,
      "server.httpListenAddr": `127.0.0.1:${plan.httpPort}`,
    }).map(([key, value]) => `--set=${key}=${value}`),
  ];
  const child = spawn(plan.binaryPath, args, {
    env: { ...process.env, CERBOS_NO_TELEMETRY: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = captureOutput(child);
  const spawned = await new Promise<Error | undefined>((settle) => {
    child.once("spawn", () => settle(undefined));
    child.once("error", settle);
  });
  if (spawned !== undefined || child.pid === undefined) {
    throw new LocalPdpError(
      "local_pdp_binary_not_found",
      `cannot run the Cerbos binary at ${plan.binaryPath}: ${spawned?.message}`,
      "",
      { cause: spawned },
    );
  }
  const pid = child.pid;
  const reaper = startReaper(pid);
  liveChildren.add(child);
  // A PDP someone forgot to stop must not keep this process alive; the exit hook and the reaper clean it up.
  child.unref();

  const stop = once(child, "exit").then(() => undefined);
  const cleanup = async (): Promise<void> => {
    liveChildren.delete(child);
    reaper.kill("SIGKILL");
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killTimer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await stop;
      clearTimeout(killTimer);
    }
  };

  try {
    await waitHealthy(httpAddress, child, plan.startupTimeoutMs, output);
  } catch (error) {
    await cleanup();
    throw error;
  }

  const client = new GRPC(grpcAddress, { tls: false });
  let stopping: Promise<void> | undefined;
  const stopPdp = (): Promise<void> => {
    stopping ??= (async () => {
      client.close();
      await cleanup();
    })();
    return stopping;
  };
  return Object.freeze({
    grpcAddress,
    httpAddress,
    client,
    pid,
    policyDir: plan.policyDir,
    stop: stopPdp,
    [Symbol.asyncDispose]: stopPdp,
  });
}

async function waitHealthy(
  httpAddress: string,
  child: ChildProcess,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // "close", not "exit": it comes once the PDP's output is drained, so a failure can quote all of it.
  let closed: { code: unknown; signal: unknown } | undefined;
  const closing = once(child, "close").then(([code, signal]) => {
    closed = { code, signal };
  });
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${httpAddress}/_cerbos/health`, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await Promise.race([closing, new Promise((settle) => setTimeout(settle, 20))]);
    if (closed !== undefined) throw startFailure(output(), closed);
  }
  throw new LocalPdpError(
    "local_pdp_failed_to_start",
    `Cerbos did not become healthy at ${httpAddress} within ${timeoutMs} ms${quote(output())}`,
    output(),
  );
}

function startFailure(output: string, exit: { code: unknown; signal: unknown }): LocalPdpError {
  const cerbosSaid = output
    .split("\n")
    .filter((line) => line.startsWith("cerbos: error:") || /^\s{4,}\S/.test(line))
    .join("\n")
    .trim();
  // A file Cerbos could not even read (YAML syntax) is named, with its line and column, only in its JSON log.
  const unreadable = loadFailures(output);
  const said = [unreadable, cerbosSaid === "" ? output.trim() : cerbosSaid].filter((part) => part !== "").join("\n");
  const code =
    /compil|failed to load policies|invalid policy|failed to read policy|(?:imports|scopes|definitions|failures|conflicts)=[1-9]/i.test(
      said,
    )
      ? "local_pdp_policy_invalid"
      : "local_pdp_failed_to_start";
  const how = exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
  return new LocalPdpError(code, `Cerbos exited (${how}) before it was healthy${quote(said)}`, output);
}

/**
 * The policy files Cerbos's index could not load, as `file:line:column: error` lines with the offending excerpt,
 * read from its JSON log ("Index build failed"); `""` when there are none.
 */
function loadFailures(output: string): string {
  const lines: string[] = [];
  for (const line of output.split("\n")) {
    if (!line.includes("load_failures")) continue;
    try {
      const failures = (JSON.parse(line) as { load_failures?: unknown }).load_failures;
      for (const failure of Array.isArray(failures) ? failures : []) {
        const {
          file,
          error,
          error_details: details,
        } = failure as {
          file?: unknown;
          error?: unknown;
          error_details?: { position?: { line?: unknown; column?: unknown }; context?: unknown };
        };
        const at = details?.position;
        const where =
          typeof at?.line === "number" ? `:${at.line}${typeof at.column === "number" ? `:${at.column}` : ""}` : "";
        lines.push(`${String(file)}${where}: ${String(error)}`);
        if (typeof details?.context === "string") lines.push(details.context.trimEnd());
      }
    } catch {
      // Not a JSON log line: nothing to read from it.
    }
  }
  return lines.join("\n");
}

function quote(said: string): string {
  return said === "" ? "" : `:\n${said}`;
}

/** Keeps the last few KiB of the PDP's output, and keeps draining it so that a chatty PDP never blocks on a pipe. */
function captureOutput(child: ChildProcess): () => string {
  let tail = "";
  const append = (chunk: Buffer): void => {
    tail = (tail + chunk.toString("utf8")).slice(-outputLimit);
  };
  for (const stream of [child.stdout, child.stderr]) {
    stream?.on("data", append);
    (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }
  return () => tail;
}

/**
 * A tiny `sh` that waits for its stdin to close, then kills the PDP. Our end of that pipe closes however this
 * process dies, so no PDP outlives it; Node's own "exit" event does not fire on signals.
 */
function startReaper(pid: number): ChildProcess {
  const reaper = spawn("/bin/sh", ["-c", 'read _ ; kill -TERM "$0" 2>/dev/null', String(pid)], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  reaper.on("error", () => {
    // Without /bin/sh the exit hook below still covers a normal exit.
  });
  reaper.unref();
  (reaper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return reaper;
}

const liveChildren = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
});

function resolvePolicyDir(dir: string | URL): string {
  const path = dir instanceof URL ? fileURLToPath(dir) : resolve(dir);
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    // Reported below.
  }
  if (!isDirectory) {
    throw new LocalPdpError(
      "local_pdp_policy_dir_not_found",
      `policy folder ${path} does not exist or is not a folder`,
    );
  }
  return path;
}

async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  try {
    return await Promise.all(
      servers.map(
        (server) =>
          new Promise<number>((settle, fail) => {
            server.once("error", fail);
            server.listen(0, "127.0.0.1", () => {
              const address = server.address();
              if (typeof address === "object" && address !== null) settle(address.port);
              else fail(new Error("the OS assigned no port"));
            });
          }),
      ),
    );
  } finally {
    await Promise.all(servers.map((server) => new Promise((settle) => server.close(settle))));
  }
}
