import { defineConfig, mergeConfig } from "vitest/config";
import base from "./vitest.config.ts";

// For `npm run mutate`: the whole suite but the runs that only measure scale or build the package (load, the examples
// and the command line, which build dist/ and spawn processes) and the plan cache's differential runs, which cover
// none of the mutated files but would rerun for every mutant they happen to touch.
export default mergeConfig(
  base,
  defineConfig({
    test: {
      exclude: [
        "test/security/load.test.ts",
        "test/examples.test.ts",
        "test/cli/**",
        "test/plan-cache/**",
        "node_modules/**",
      ],
      reporters: ["default"],
    },
  }),
);
