import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { type PackedPackage, packPackage } from "../packaging/packed-package.ts";

// Every ```ts block of README.md is compiled against the packed package and run against the real PDP and MCP
// servers. The convention (CONTRIBUTING.md, "README blocks"): `<!-- readme-block: <id> -->` on the line before the
// block; test/readme/setup/<id>.ts, if any, provides the names the block uses without defining them (each of its
// exports the block mentions is imported for it); test/readme/check/<id>.ts, if any, default-exports a function that
// gets the block's top-level variables and asserts what the block did.
const root = fileURLToPath(new URL("../..", import.meta.url));
const here = join(root, "test/readme");
const run = promisify(execFile);

interface ReadmeBlock {
  readonly id: string | undefined;
  /** The README line of the block's first code line. */
  readonly line: number;
  readonly code: string;
}

function readmeBlocks(markdown: string): ReadmeBlock[] {
  const lines = markdown.split("\n");
  const blocks: ReadmeBlock[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (lines[index] !== "```ts") continue;
    const marker = /^<!-- readme-block: ([a-z0-9-]+) -->$/.exec(lines[index - 1] ?? "")?.[1];
    const end = lines.indexOf("```", index + 1);
    blocks.push({ id: marker, line: index + 2, code: lines.slice(index + 1, end).join("\n") });
    index = end;
  }
  return blocks;
}

/** The names a module declares at its top level (column 0): imports, const/let/function/class, destructurings. */
function topLevelNames(code: string, { exportedOnly = false } = {}): string[] {
  const names: string[] = [];
  const prefix = exportedOnly ? "export " : "(?:export )?";
  for (const [, list] of code.matchAll(/^import (?:type )?\{([^}]*)\} from/gm)) {
    if (!exportedOnly)
      names.push(
        ...(list ?? "").split(",").map(
          (name) =>
            name
              .trim()
              .split(/\s+as\s+|\s+/)
              .at(-1) ?? "",
        ),
      );
  }
  if (!exportedOnly) for (const [, name] of code.matchAll(/^import (\w+) from/gm)) names.push(name ?? "");
  const declared = new RegExp(`^${prefix}(?:const|let|var|(?:async )?function\\*?|class) (\\w+)`, "gm");
  for (const [, name] of code.matchAll(declared)) names.push(name ?? "");
  const destructured = new RegExp(`^${prefix}(?:const|let|var) [{[]([^}\\]]*)[}\\]]`, "gm");
  for (const [, list] of code.matchAll(destructured)) {
    names.push(...(list ?? "").split(",").map((entry) => entry.split(":").at(-1)?.split("=")[0]?.trim() ?? ""));
  }
  return [...new Set(names.filter((name) => /^\w+$/.test(name)))];
}

const blocks = readmeBlocks(readFileSync(join(root, "README.md"), "utf8"));
const named = blocks.filter((block): block is ReadmeBlock & { id: string } => block.id !== undefined);
let packed: PackedPackage;
/** Per block: how many lines the test put before the README's code in blocks/<id>.ts. */
const headerLines = new Map<string, number>();

function blockModule(block: ReadmeBlock & { id: string }): string {
  const setupFile = join(here, "setup", `${block.id}.ts`);
  const checkFile = join(here, "check", `${block.id}.ts`);
  const own = new Set(topLevelNames(block.code));
  const header: string[] = [];
  if (existsSync(setupFile)) {
    const given = topLevelNames(readFileSync(setupFile, "utf8"), { exportedOnly: true }).filter(
      (name) => !own.has(name) && new RegExp(`\\b${name}\\b`).test(block.code),
    );
    header.push(`import { ${given.join(", ")} } from "../test/readme/setup/${block.id}.ts";`);
  }
  if (existsSync(checkFile)) header.push(`import readmeCheck from "../test/readme/check/${block.id}.ts";`);
  header.push(`// README.md line ${block.line}`);
  headerLines.set(block.id, header.length);
  const variables = topLevelNames(block.code.replace(/^import .*$/gm, ""));
  const footer = existsSync(checkFile) ? [`await readmeCheck({ ${variables.join(", ")} });`] : [];
  // A block's MCP servers and clients would keep its process alive: it ends once the block (and its check) did.
  return [...header, block.code, ...footer, "process.exit(0);", ""].join("\n");
}

/** tsc's `blocks/<id>.ts(line,col)` as the README line it came from. */
function inReadme(output: string): string {
  return output.replace(/blocks\/([a-z0-9-]+)\.ts\((\d+),(\d+)\)/g, (whole, id: string, line: string) => {
    const block = named.find((each) => each.id === id);
    const header = headerLines.get(id);
    if (block === undefined || header === undefined) return whole;
    return `README.md:${block.line + Number(line) - header - 1} (block "${id}")`;
  });
}

beforeAll(async () => {
  packed = await packPackage();
  const { app } = packed;
  cpSync(here, join(app, "test/readme"), { recursive: true });
  cpSync(join(root, "examples/support"), join(app, "examples/support"), { recursive: true });
  mkdirSync(join(app, "blocks"));
  for (const block of named) writeFileSync(join(app, "blocks", `${block.id}.ts`), blockModule(block));
  const repoOptions = JSON.parse(readFileSync(join(root, "tsconfig.json"), "utf8")).compilerOptions;
  const { paths: _paths, ...compilerOptions } = repoOptions;
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({ compilerOptions, include: ["blocks"] }));
}, 60_000);
afterAll(() => packed?.remove());

describe("README.md", () => {
  test("every ts block is marked <!-- readme-block: <id> -->, ids are unique, and every set-up or check has its block", () => {
    expect(blocks.filter((block) => block.id === undefined).map((block) => `README.md:${block.line}`)).toEqual([]);
    const ids = named.map((block) => block.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const folder of ["setup", "check"]) {
      const orphans = readdirSync(join(here, folder)).filter((file) => !ids.includes(file.replace(/\.ts$/, "")));
      expect(orphans, `test/readme/${folder}`).toEqual([]);
    }
  });

  test("every ts block compiles against the packed package", async () => {
    const compiled = await run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", "."], {
      cwd: packed.app,
    }).then(
      () => "",
      (error: { stdout: string }) => inReadme(error.stdout),
    );
    expect(compiled).toBe("");
  }, 60_000);

  test.each(named.map((block) => [block.id]))(
    "block %s runs against the real PDP and MCP servers",
    async (id) => {
      const cwd = join(packed.app, "work", id);
      mkdirSync(cwd, { recursive: true });
      const ran = await run(process.execPath, [join(packed.app, "blocks", `${id}.ts`)], {
        cwd,
        env: { ...process.env, HOPGUARD_README_PDP: inject("pdpGrpcAddress") },
        timeout: 30_000,
      }).then(
        () => "",
        (error: { stderr?: string; message: string }) => inReadme(error.stderr || error.message),
      );
      expect(ran).toBe("");
    },
    40_000,
  );
});
