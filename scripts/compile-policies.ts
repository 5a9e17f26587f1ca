// Compiles policies/ and runs its Cerbos test suites (*_test.yaml) with the same binary the local PDP uses.
// Cerbos exits 0 when all pass, 4 when a test fails and 3 when a policy does not compile; we pass that on.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cerbosBinaryPath } from "../src/local-pdp.ts";

const policies = fileURLToPath(new URL("../policies/", import.meta.url));
const result = spawnSync(cerbosBinaryPath(), ["compile", "--color=never", policies], {
  stdio: "inherit",
  env: { ...process.env, CERBOS_NO_TELEMETRY: "1" },
});
if (result.error) throw result.error;
process.exit(result.status ?? 1);
