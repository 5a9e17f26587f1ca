// Adds package-lock.json entries for other platforms' optional native binaries (Biome's, Cerbos's, ...) when the
// registry this lock was made against does not serve them: npm then leaves them out of the lock, and `npm ci`
// refuses the lock as out of sync. Each entry carries os/cpu/libc, so npm skips it on every other platform and never
// fetches it here. Run after `npm install` changes the lock:  node scripts/fill-lock-platforms.ts
import { readFileSync, writeFileSync } from "node:fs";

interface LockEntry {
  version?: string;
  dev?: boolean;
  optional?: boolean;
  optionalDependencies?: Record<string, string>;
  [field: string]: unknown;
}

const lockPath = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8")) as { packages: Record<string, LockEntry> };
const platform =
  /(android|darwin|linux|win32|freebsd|openbsd|netbsd|sunos|aix|openharmony)-(arm64|x64|arm|ia32|riscv64|s390x|ppc64|loong64)(?:-(gnu|musl|msvc))?$/;
const added: string[] = [];

for (const [path, entry] of Object.entries(lock.packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${path === "" ? "" : `${path}/`}node_modules/${name}`;
    if (lock.packages[`node_modules/${name}`] !== undefined || lock.packages[nested] !== undefined) continue;
    const match = platform.exec(name);
    if (match === null) continue;
    const [, os, cpu, libc] = match;
    lock.packages[`node_modules/${name}`] = {
      version,
      ...(entry.dev === true ? { dev: true } : {}),
      optional: true,
      cpu: [cpu],
      os: [os],
      ...(libc === "gnu" || libc === "musl" ? { libc: [libc === "gnu" ? "glibc" : "musl"] } : {}),
    };
    added.push(`${name}@${version}`);
  }
}

const [root, ...rest] = Object.entries(lock.packages);
lock.packages = Object.fromEntries(
  [root, ...rest.sort(([a], [b]) => (a < b ? -1 : 1))].filter((item) => item !== undefined),
);
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added.length === 0 ? "package-lock.json already complete" : `added ${added.join(", ")}`);
