import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";

// scripts/check-node.mjs runs first in `npm test`, `npm run demo` and `npm run bench`, so that an older Node says
// what is wrong instead of failing on the first `.ts` file with ERR_UNKNOWN_FILE_EXTENSION.
const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function ran(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(command, args, {
      cwd: root,
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: unknown; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : -1,
      stdout: failed.stdout ?? "",
      stderr: failed.stderr ?? "",
    };
  }
}

const check = (version: string) =>
  ran(process.execPath, ["scripts/check-node.mjs"], { HOPGUARD_NODE_VERSION: version });

describe("scripts/check-node.mjs", () => {
  test("refuses a Node older than engines.node (>=22.18) with one line that says so", async () => {
    for (const version of ["v22.17.1", "v22.0.0", "v20.19.5", "v18.20.0"]) {
      const result = await check(version);
      expect(result.code, version).toBe(1);
      expect(result.stderr).toBe(`hopguard needs Node ≥ 22.18; this is ${version}\n`);
    }
  });

  test("lets 22.18 and anything newer through, silently", async () => {
    for (const version of ["v22.18.0", "v22.23.3", "v23.0.0", "v24.1.0", process.version]) {
      expect(await check(version), version).toEqual({ code: 0, stdout: "", stderr: "" });
    }
  });

  // The machines this runs on (and CI before .ci/run installs Node 22) ship Node 20 as /usr/bin/node.
  test("on the system's Node 20, `npm test` and `npm run demo` stop with that line, not ERR_UNKNOWN_FILE_EXTENSION", async () => {
    expect(existsSync("/usr/bin/node")).toBe(true);
    const version = (await run("/usr/bin/node", ["--version"])).stdout.trim();
    expect(version).toMatch(/^v(1\d|20|21|22\.(\d|1[0-7]))\./);
    const olderNodeFirst = { PATH: `/usr/bin:${process.env.PATH ?? ""}`, HOPGUARD_NODE_VERSION: "" };
    for (const script of ["test", "demo"]) {
      const result = await ran("/usr/bin/node", ["/usr/bin/npm", "run", script], olderNodeFirst);
      expect(result.code, script).not.toBe(0);
      expect(result.stderr, script).toContain(`hopguard needs Node ≥ 22.18; this is ${version}`);
      expect(result.stderr + result.stdout, script).not.toContain("ERR_UNKNOWN_FILE_EXTENSION");
    }
  });
});
