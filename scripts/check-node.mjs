// Runs before `npm test`, `npm run demo` and `npm run bench`. Plain JavaScript on purpose: on an older Node the
// scripts' TypeScript would fail with ERR_UNKNOWN_FILE_EXTENSION, which says nothing about what is wrong.
// The minimum comes from package.json's engines.node (">=major.minor[.patch]"), the one place it is written down.
// HOPGUARD_NODE_VERSION stands in for this Node's version, for the tests of this check.
import { readFileSync } from "node:fs";

const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const wanted = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(manifest.engines?.node ?? "");
const current = process.env.HOPGUARD_NODE_VERSION || process.version;
const parts = (version) => version.replace(/^v/, "").split(".").map(Number);

if (wanted !== null) {
  const minimum = wanted.slice(1).map((part) => Number(part ?? 0));
  const have = parts(current);
  let older = false;
  for (let index = 0; index < 3; index++) {
    const a = have[index] || 0;
    const b = minimum[index];
    if (a !== b) {
      older = a < b;
      break;
    }
  }
  if (older) {
    const shown = wanted
      .slice(1)
      .filter((part) => part !== undefined)
      .join(".");
    process.stderr.write(
      `hopguard needs Node ≥ ${shown}; this is ${current.startsWith("v") ? current : `v${current}`}\n`,
    );
    process.exit(1);
  }
}
