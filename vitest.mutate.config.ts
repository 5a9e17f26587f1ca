import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.ts";

// For `npm run mutate`: the whole suite but the runs that only measure scale or rebuild the package (load, the
// examples that build dist/ and spawn processes), which would rerun for every mutant they happen to cover.
export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: ["test/security/load.test.ts", "test/examples.test.ts", "node_modules/**"],
      reporters: ["default"],
    },
  }),
);
