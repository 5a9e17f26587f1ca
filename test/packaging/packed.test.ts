import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type PackedPackage, packPackage } from "./packed-package.ts";

// What a stranger gets from `npm install hopguard`: the tarball `npm pack` makes, checked as it lands in an app.
const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
let packed: PackedPackage;

beforeAll(async () => {
  packed = await packPackage();
}, 60_000);
afterAll(() => packed?.remove());

function filesUnder(folder: string): string[] {
  return readdirSync(folder, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name));
}

describe("the tarball", () => {
  test("holds the build, the policies, README, LICENSE and package.json — no sources, tests or repo tooling", () => {
    const topLevel = new Set(packed.files.map((path) => path.split("/")[0]));
    expect([...topLevel].sort()).toEqual(["LICENSE", "README.md", "dist", "package.json", "policies"]);
    expect(packed.files).toContain("dist/local-pdp.js");
    expect(packed.files).toContain("policies/agent.yaml");
    expect(readFileSync(join(packed.installed, "LICENSE"), "utf8")).toMatch(
      /^\s+Apache License\s+Version 2\.0, January 2004/,
    );
    const manifest = JSON.parse(readFileSync(join(packed.installed, "package.json"), "utf8"));
    expect(manifest.engines).toEqual({ node: ">=22.18" });
    expect(manifest.repository.url).toBe("git+https://github.com/hopguard/hopguard.git");
    // Every export resolves to a file in the tarball.
    for (const [subpath, target] of Object.entries<Record<string, string> | string>(manifest.exports)) {
      for (const file of typeof target === "string" ? [target] : Object.values(target)) {
        expect(existsSync(join(packed.installed, file)), `${subpath} → ${file}`).toBe(true);
      }
    }
  });

  test("publint --strict finds nothing", async () => {
    const { stdout } = await run(process.execPath, [
      join(root, "node_modules/publint/src/cli.js"),
      "run",
      packed.tarball,
      "--strict",
    ]);
    expect(stdout).toContain("All good!");
  });

  test("every source map carries the TypeScript it maps (src/ is not shipped), and every map it names is shipped", () => {
    const dist = join(packed.installed, "dist");
    const maps = filesUnder(dist).filter((path) => path.endsWith(".js.map"));
    expect(maps.length).toBeGreaterThan(20);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(map, "utf8")) as {
        sources: string[];
        sourcesContent?: string[];
      };
      expect(sourcesContent?.length, map).toBe(sources.length);
      // The staging build sits elsewhere, so resolve the source from the repo by its path below src/.
      const source = sources[0] ?? "";
      const below = resolve(dirname(map), source).split("/src/").at(-1) ?? "";
      expect(sourcesContent?.[0], map).toBe(readFileSync(join(root, "src", below), "utf8"));
    }
    for (const file of filesUnder(dist).filter((path) => /\.(?:js|d\.ts)$/.test(path))) {
      const named = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(file, "utf8"))?.[1];
      if (named !== undefined) expect(existsSync(join(dirname(file), named)), file).toBe(true);
    }
  });
});

describe("what importing each entry point loads", () => {
  // Modules a core user must not pay for: the local PDP's process spawning and the gRPC client (and its channel).
  const hooks = `
    import { registerHooks } from "node:module";
    const banned = ["node:child_process", "child_process", "@cerbos/grpc", "@cerbos/http", "@grpc/grpc-js"];
    registerHooks({
      resolve(specifier, context, nextResolve) {
        if (banned.includes(specifier)) throw new Error("loaded " + specifier);
        return nextResolve(specifier, context);
      },
      load(url, context, nextLoad) {
        if (/\\/node_modules\\/(?:@cerbos\\/(?:grpc|http)|@grpc\\/grpc-js)\\//.test(url)) throw new Error("loaded " + url);
        return nextLoad(url, context);
      },
    });
  `;
  const withoutProcessesOrGrpc = (script: string) =>
    run(
      process.execPath,
      ["--import", `data:text/javascript,${encodeURIComponent(hooks)}`, "--input-type=module", "-e", script],
      { cwd: packed.app, timeout: 20_000 },
    );

  test("hopguard and hopguard/ai load neither node:child_process nor @cerbos/grpc, and decide with any client", async () => {
    // A fake client answering like Cerbos: allow delegations and read_file, deny the rest.
    const script = `
      import { createGuard } from "hopguard";
      import { guardTools } from "hopguard/ai";
      const client = {
        async checkResources({ resources }) {
          return {
            results: resources.map(({ resource, actions }) => ({
              resource: { kind: resource.kind, id: resource.id },
              actions: Object.fromEntries(actions.map((action) => [action, resource.kind === "agent" || resource.id === "read_file" ? "EFFECT_ALLOW" : "EFFECT_DENY"])),
              outputs: [],
            })),
          };
        },
        async planResources() { throw new Error("not used"); },
      };
      const chain = await createGuard({ client }).forUser({ id: "alice", roles: ["user"] }).delegate({ id: "helper", roles: ["agent"] });
      const read = await chain.authorize({ server: "filesystem", tool: "read_file", arguments: {} });
      const write = await chain.authorize({ server: "filesystem", tool: "write_file", arguments: {} });
      console.log(JSON.stringify({ read: read.allowed, write: write.allowed, deniedBy: write.deniedBy, guardTools: typeof guardTools }));
    `;
    const { stdout } = await withoutProcessesOrGrpc(script);
    expect(JSON.parse(stdout)).toEqual({ read: true, write: false, deniedBy: "alice", guardTools: "function" });
  });

  test("hopguard/local-pdp is where they live (the same hooks refuse it), and it serves the bundled policies", async () => {
    const refused = await withoutProcessesOrGrpc(`await import("hopguard/local-pdp");`).then(
      () => "imported",
      (error: { stderr: string }) => error.stderr,
    );
    expect(refused).toMatch(/loaded (?:node:child_process|@cerbos\/grpc)/);
    const { stdout } = await run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { bundledPolicyDir } from "hopguard/local-pdp"; console.log(bundledPolicyDir);`,
      ],
      { cwd: packed.app },
    );
    expect(stdout.trim()).toBe(join(packed.installed, "policies"));
  });
});
