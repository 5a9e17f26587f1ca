import { readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { version } from "../src/version.ts";

test("the version reported to tracers is package.json's", () => {
  const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  expect(version).toBe(manifest.version);
});
