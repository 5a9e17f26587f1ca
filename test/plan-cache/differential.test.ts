import { fileURLToPath } from "node:url";
import type { Principal } from "@cerbos/core";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createPlanCache, type PlanCache, readPolicyProfile } from "../../src/plan-cache/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import {
  type Comparison,
  compareWithLive,
  hopPrincipals,
  type RandomCall,
  randomCall,
} from "./differential-harness.ts";

const client = sharedPdpClient();
const policyDir = fileURLToPath(new URL("../../policies/", import.meta.url));

let principals: Principal[];
let cache: PlanCache;

beforeAll(async () => {
  principals = await hopPrincipals(client);
  // A generous plan deadline: a plan that times out only sends its hop live, but would thin out what is compared.
  cache = createPlanCache({ client, policies: await readPolicyProfile(policyDir), timeoutMs: 15_000 });
});

describe("plan cache against the live PDP, hop by hop", () => {
  it("agrees with the PDP on every hop it answers, over random arguments, every hop of every chain", async () => {
    const total: Comparison = { comparisons: 0, plan: 0, residual: 0, mismatches: [] };
    await fc.assert(
      fc.asyncProperty(fc.array(randomCall, { minLength: 50, maxLength: 50 }), async (calls: RandomCall[]) => {
        const round = await compareWithLive(client, cache, principals, calls);
        total.comparisons += round.comparisons;
        total.plan += round.plan;
        total.residual += round.residual;
        expect(round.mismatches).toEqual([]);
      }),
      { seed: 9009, numRuns: 6, endOnFailure: true },
    );
    expect(principals.length).toBeGreaterThanOrEqual(14);
    expect(total.comparisons).toBe(6 * 50 * principals.length);
    expect(total.comparisons).toBeGreaterThanOrEqual(4000);
    // Not vacuous: most hops are answered in-process, by plans and by residuals alike, and some still go live.
    expect(total.plan).toBeGreaterThan(total.comparisons / 5);
    expect(total.residual).toBeGreaterThan(total.comparisons / 10);
    expect(total.plan + total.residual).toBeLessThan(total.comparisons);
  });

  it("answers the workspace tricks from the residual exactly as the PDP does", async () => {
    const paths = [
      "/workspace/alice/notes.md",
      "/workspace/alice",
      "/workspace/alice-secrets/plan.md",
      "/workspace/alice/../bob/notes.md",
      "/workspace/alice/\u0000",
      `/workspace/alice/${"a".repeat(3000)}`,
      " /workspace/alice/notes.md",
      "/tmp/workspace/alice/notes.md",
      "workspace/alice/notes.md",
      "/workspace/bob/notes.md",
      "/workspace/ivan/notes.md",
    ];
    const calls = paths.map((path) => ({ server: "filesystem", tool: "read_file", arguments: { path } }));
    const round = await compareWithLive(client, cache, principals, calls);
    expect(round.mismatches).toEqual([]);
    // Every hop answered in-process: a path that is there is all the residual needs.
    expect(round.residual).toBe(round.comparisons);
  });

  it("sends a missing path, a null path, a lone surrogate and a wrong type to the PDP", async () => {
    const calls: RandomCall[] = [{}, { path: null }, { path: "/workspace/alice/\uD800" }, { path: 7 }].map((args) => ({
      server: "filesystem",
      tool: "read_file",
      arguments: args,
    }));
    const round = await compareWithLive(client, cache, principals, calls);
    expect(round.mismatches).toEqual([]);
    expect(round.plan + round.residual).toBe(0);
  });

  it("never answers move_file, whose allow carries the approval output, from memory", async () => {
    const calls: RandomCall[] = [
      {
        server: "filesystem",
        tool: "move_file",
        arguments: { source: "/workspace/alice/a.md", destination: "/workspace/alice/b.md" },
      },
    ];
    const round = await compareWithLive(client, cache, principals, calls);
    expect(round.comparisons).toBe(principals.length);
    expect(round.plan + round.residual).toBe(0);
  });
});
