import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { createGuard, LocalPdpError } from "../src/index.ts";
import { cerbosBinaryPath, startLocalPdp } from "../src/local-pdp.ts";
import { tempDir } from "./support/temp-dir.ts";
import { alice } from "./support/users.ts";

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((settle) => setTimeout(settle, 25));
  }
  return condition();
}

interface AuditEntry {
  "log.logger"?: string;
  "log.kind"?: string;
  callId?: string;
  checkResources?: { inputs?: { requestId?: string; principal?: { id?: string } }[] };
}

/** The complete JSON lines of a Cerbos audit log; a line still being written (no newline yet) is left for later. */
function auditEntries(file: string): AuditEntry[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return text
    .slice(0, text.lastIndexOf("\n") + 1)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as AuditEntry);
}

async function startError(options: Parameters<typeof startLocalPdp>[0]): Promise<LocalPdpError> {
  const error = await startLocalPdp(options).then(
    async (pdp) => {
      await pdp.stop();
      return undefined;
    },
    (thrown: unknown) => thrown,
  );
  expect(LocalPdpError.isInstance(error), `expected LocalPdpError, got ${String(error)}`).toBe(true);
  return error as LocalPdpError;
}

describe("startLocalPdp", () => {
  test("serves the package's policies on free loopback ports, answers health, and stops", async () => {
    const pdp = await startLocalPdp();
    expect(pdp.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(pdp.httpAddress).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${pdp.httpAddress}/_cerbos/health`);
    expect(health.ok).toBe(true);
    const decision = await createGuard({ client: pdp.client })
      .forUser(alice)
      .authorize({ server: "filesystem", tool: "list_allowed_directories" });
    expect(decision.allowed).toBe(true);

    await pdp.stop();
    await pdp.stop();
    expect(isRunning(pdp.pid)).toBe(false);
    await expect(fetch(`${pdp.httpAddress}/_cerbos/health`)).rejects.toThrow();
  });

  test("two PDPs run side by side on different ports", async () => {
    const [first, second] = await Promise.all([startLocalPdp(), startLocalPdp()]);
    try {
      expect(first?.grpcAddress).not.toBe(second?.grpcAddress);
    } finally {
      await Promise.all([first?.stop(), second?.stop()]);
    }
  });

  test("supports await using: the PDP stops when the scope ends", async () => {
    let pid = 0;
    {
      await using pdp = await startLocalPdp();
      pid = pdp.pid;
      expect(isRunning(pid)).toBe(true);
    }
    expect(isRunning(pid)).toBe(false);
  });

  test("writes Cerbos's audit log, where each hop's entry carries hopguard's request id", async () => {
    const auditLogFile = join(tempDir("hopguard-audit-"), "audit.log");
    const pdp = await startLocalPdp({ auditLogFile });
    try {
      const decision = await createGuard({ client: pdp.client })
        .forUser(alice)
        .authorize({ server: "filesystem", tool: "list_allowed_directories" });
      // Cerbos writes an access entry and a decision entry per call, in either order: wait for the decision itself.
      // Hops asked in one AuthZEN batch have no call id of their own; the request id finds them.
      let entry: AuditEntry | undefined;
      const logged = await waitUntil(() => {
        entry = auditEntries(auditLogFile).find(
          (line) =>
            line["log.kind"] === "decision" && line.checkResources?.inputs?.[0]?.requestId === decision.requestId,
        );
        return entry !== undefined;
      }, 5000);
      expect(logged).toBe(true);
      expect(entry?.["log.logger"]).toBe("cerbos.audit");
      expect(entry?.checkResources?.inputs?.[0]?.principal?.id).toBe("alice");
    } finally {
      await pdp.stop();
    }
  });

  test("passes extra --set values to Cerbos", async () => {
    const pdp = await startLocalPdp({ set: { "server.requestLimits.maxResourcesPerRequest": 2 } });
    try {
      const principal = { id: "alice", roles: ["user"] };
      const resources = ["a", "b", "c"].map((id) => ({ resource: { kind: "mcp::filesystem", id }, actions: [id] }));
      await expect(pdp.client.checkResources({ principal, resources })).rejects.toThrow(/2/);
    } finally {
      await pdp.stop();
    }
  });

  test("a policy that does not compile is a typed error quoting Cerbos", async () => {
    const policyDir = tempDir("hopguard-bad-policy-");
    writeFileSync(
      join(policyDir, "broken.yaml"),
      [
        "apiVersion: api.cerbos.dev/v1",
        "resourcePolicy:",
        '  resource: "mcp::broken"',
        "  version: default",
        "  rules:",
        '    - actions: ["x"]',
        "      effect: EFFECT_ALLOW",
        '      roles: ["user"]',
        "      condition:",
        "        match:",
        "          expr: P.attr.department ==",
      ].join("\n"),
    );
    const error = await startError({ policyDir });
    expect(error.code).toBe("local_pdp_policy_invalid");
    expect(error.message).toContain("broken.yaml");
    expect(error.message).toContain("P.attr.department ==");
  });

  test("a policy file that is not even YAML is named with its line and column", async () => {
    const policyDir = tempDir("hopguard-bad-yaml-");
    writeFileSync(
      join(policyDir, "unclosed.yaml"),
      "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: x\n  version: default\n  rules: [\n",
    );
    const error = await startError({ policyDir });
    expect(error.code).toBe("local_pdp_policy_invalid");
    expect(error.message).toMatch(/unclosed\.yaml:5:10: sequence end token '\]' not found/);
    expect(error.message).toContain(">  5 |   rules: [");
  });

  test("a missing policy folder is a typed error before anything is spawned", async () => {
    const error = await startError({ policyDir: join(tmpdir(), "hopguard-no-such-folder") });
    expect(error.code).toBe("local_pdp_policy_dir_not_found");
  });

  test("a missing binary is a typed error", async () => {
    const error = await startError({ binaryPath: join(tmpdir(), "no-cerbos-here") });
    expect(error.code).toBe("local_pdp_binary_not_found");
  });

  test("a PDP that exits at once is reported with what it said", async () => {
    const error = await startError({ set: { "server.adminAPI.enabled": "not-a-bool" } });
    expect(error.code).toBe("local_pdp_failed_to_start");
    expect(error.output).not.toBe("");
  });

  test("resolves the native binary npm installed, not the Node wrapper", () => {
    expect(cerbosBinaryPath()).toMatch(/@cerbos\/cerbos-[a-z]+-[a-z0-9]+\/cerbos-[a-z]+-[a-z0-9]+$/);
  });

  test("the PDP does not outlive its parent, even when the parent is SIGKILLed", async () => {
    const parent = spawn(process.execPath, [fileURLToPath(new URL("./fixtures/orphan-parent.ts", import.meta.url))], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const pid = await new Promise<number>((settle, fail) => {
      parent.stdout.once("data", (chunk: Buffer) => settle(Number(chunk.toString().trim())));
      parent.once("exit", (code) => fail(new Error(`parent exited early with ${code}`)));
    });
    expect(isRunning(pid)).toBe(true);

    parent.kill("SIGKILL");

    expect(await waitUntil(() => !isRunning(pid), 10_000)).toBe(true);
  });
});
