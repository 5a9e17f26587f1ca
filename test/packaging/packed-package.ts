import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = fileURLToPath(new URL("../../", import.meta.url));
const run = promisify(execFile);

/** hopguard as `npm pack` ships it, unpacked where an application's `npm install hopguard` would put it. */
export interface PackedPackage {
  /** The `.tgz` that `npm pack` wrote. */
  readonly tarball: string;
  /** The paths inside the tarball, without the leading `package/`, sorted. */
  readonly files: readonly string[];
  /** An empty ESM application (`package.json` with `"type": "module"`) whose `node_modules/hopguard` is the tarball. */
  readonly app: string;
  /** `<app>/node_modules/hopguard`. */
  readonly installed: string;
  /** Removes everything. */
  remove(): void;
}

/**
 * Builds the package with tsconfig.build.json into a staging copy (package.json, README.md, LICENSE, policies/ — never
 * the repo's dist/, which the examples test builds), runs `npm pack` there without scripts, and unpacks the tarball
 * into a temporary application's `node_modules/hopguard`. Every other entry of the application's node_modules is a
 * link to the repo's (hopguard's dependencies, the frameworks, `cerbos`), so nothing is fetched: offline and a few
 * seconds. The application is outside any node_modules, so Node runs its `.ts` files.
 */
export async function packPackage(): Promise<PackedPackage> {
  const folder = mkdtempSync(join(tmpdir(), "hopguard-packed-"));
  try {
    const stage = join(folder, "stage");
    mkdirSync(stage);
    for (const entry of ["package.json", "README.md", "LICENSE", "policies"]) {
      cpSync(join(root, entry), join(stage, entry), { recursive: true });
    }
    const tsc = [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")];
    await run(process.execPath, [...tsc, "--outDir", join(stage, "dist")], { cwd: root }).catch(
      (error: { stdout?: string }) => {
        throw new Error(`the build failed:\n${error.stdout ?? ""}`, { cause: error });
      },
    );
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", folder], {
      cwd: stage,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    if (packed === undefined) throw new Error(`npm pack said: ${stdout}`);
    const tarball = join(folder, packed.filename);
    const app = join(folder, "app");
    const installed = join(app, "node_modules/hopguard");
    mkdirSync(installed, { recursive: true });
    for (const entry of readdirSync(join(root, "node_modules"))) {
      if (entry === ".cache" || entry === "hopguard") continue;
      symlinkSync(join(root, "node_modules", entry), join(app, "node_modules", entry));
    }
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    await run("tar", ["-xzf", tarball, "-C", installed, "--strip-components=1"]);
    return {
      tarball,
      files: packed.files.map((entry) => entry.path).sort(),
      app,
      installed,
      remove: () => rmSync(folder, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
}
