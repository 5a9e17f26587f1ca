import type { Principal } from "@cerbos/core";
import type { GRPC } from "@cerbos/grpc";
import { createGuard, type Delegation, type Guard, type ToolDescriptor } from "../src/index.ts";
import { interleavedLatency, type LatencyFigure, round, throughput } from "./measure.ts";

/**
 * Decisions through a guard with a warm plan cache, measured interleaved with the raw check of the same call:
 *
 * - `guard.depth{n}.cached`: one decision of n hops, a file read whose path changes call to call (every hop answered
 *   by the residual condition of bench/policies/bench_files.yaml), against one raw check; `ratioP50ToRaw`.
 * - `throughput.cached`: depth-3 decisions per second at 64 in flight, against raw checks per second.
 * - `list.1000.warm`: listing 1,000 tools once the guard holds their plans (no PDP request), against one sequential
 *   check per tool; the cold listing is `list.1000`.
 * - `memory.cached`: heap after 100,000 cached decisions, after a forced GC.
 */
export async function cachedFigures(options: {
  client: GRPC;
  user: { id: string; roles: string[]; attr: Record<string, string> };
  policyDir: string;
  rawPrincipal: Principal;
  count: number;
  sequentialListingP50Ms: number;
  gc: () => void;
}): Promise<Record<string, Record<string, number>>> {
  const { client, user, policyDir, rawPrincipal, count } = options;
  const guard = createGuard({ client, planCache: { policyDir, watch: false } });
  await guard.planCache?.ready;
  const chains = await chainsUpTo(guard.forUser(user), 5);
  const at = (depth: number) => chains[depth - 1] as Delegation;
  let n = 0;
  const call = () => ({
    server: "benchfiles",
    tool: "read_file",
    arguments: { path: `${user.attr.workspace}/notes-${n++ % 1000}.md` },
  });
  // Warm every depth, then fail loudly rather than time the wrong path: every hop must come from memory.
  for (const depth of [1, 3, 5]) await at(depth).authorize(call());
  await settled(guard);
  for (const depth of [1, 3, 5]) {
    const probe = await at(depth).authorize(call());
    if (!probe.allowed || probe.hops.some((hop) => hop.source !== "residual")) {
      throw new Error(`bench: a warm depth-${depth} decision was not answered by residuals`);
    }
  }
  const rawCall = call();
  const raw = () =>
    client.checkResource({
      principal: rawPrincipal,
      resource: {
        kind: "mcp::benchfiles",
        id: rawCall.tool,
        attr: { server: rawCall.server, tool: rawCall.tool, arguments: rawCall.arguments, annotations: {} },
      },
      actions: [rawCall.tool],
    });
  // The decision right after a raw check inherits that check's aftermath (measured: ~30 µs, whichever depth goes
  // first): an untimed decision takes it, so that the three timed ones show their own cost.
  const absorb = () => at(1).authorize(call());
  const [rawFigure, _absorbed, ...depthFigures] = (await interleavedLatency(
    [raw, absorb, ...[1, 3, 5].map((depth) => () => at(depth).authorize(call()))],
    count,
  )) as [LatencyFigure, LatencyFigure, ...LatencyFigure[]];
  const figures: Record<string, Record<string, number>> = {};
  for (const [index, depth] of [1, 3, 5].entries()) {
    const figure = depthFigures[index] as LatencyFigure;
    figures[`guard.depth${depth}.cached`] = {
      ...figure,
      p50Us: round(figure.p50Ms * 1000, 1),
      rawP50Ms: rawFigure.p50Ms,
      ratioP50ToRaw: round(figure.p50Ms / rawFigure.p50Ms, 4),
    };
  }

  const total = 60_000;
  const cachedPerSecond = await throughput(() => at(3).authorize(call()), total, 64);
  const rawPerSecond = await throughput(raw, 6000, 64);
  figures["throughput.cached"] = {
    cachedDepth3PerSecond: Math.round(cachedPerSecond),
    rawPerSecond: Math.round(rawPerSecond),
    ratio: round(cachedPerSecond / rawPerSecond, 1),
    calls: total,
  };

  const tools = Array.from({ length: 1000 }, (_, i): ToolDescriptor => ({ server: "bench", tool: `tool_${i}` }));
  await at(1).callableTools(tools);
  await settled(guard);
  const [warmListing] = (await interleavedLatency([() => at(1).callableTools(tools)], 50, 5)) as [LatencyFigure];
  const listed = (await at(1).callableTools(tools)).length;
  figures["list.1000.warm"] = {
    p50Ms: warmListing.p50Ms,
    p99Ms: warmListing.p99Ms,
    listed,
    sequentialP50Ms: options.sequentialListingP50Ms,
    speedup: round(options.sequentialListingP50Ms / warmListing.p50Ms, 1),
  };

  const decisions = 100_000;
  options.gc();
  const before = process.memoryUsage().heapUsed;
  await throughput(() => at(3).authorize(call()), decisions, 64);
  options.gc();
  const after = process.memoryUsage().heapUsed;
  figures["memory.cached"] = {
    decisions,
    heapUsedBeforeMiB: mib(before),
    heapUsedAfterMiB: mib(after),
    heapGrowthMiB: mib(after - before),
    planEntries: guard.planCache?.stats().entries ?? 0,
  };
  return figures;
}

async function settled(guard: Guard): Promise<void> {
  while ((guard.planCache?.stats().inFlight ?? 0) > 0) await new Promise((resolve) => setTimeout(resolve, 5));
}

async function chainsUpTo(root: Delegation, hops: number): Promise<Delegation[]> {
  const chains = [root];
  for (let i = 1; i < hops; i++) {
    chains.push(await (chains[i - 1] as Delegation).delegate({ id: `agent-${i}`, roles: ["agent"] }));
  }
  return chains;
}

function mib(bytes: number): number {
  return round(bytes / 1024 / 1024, 2);
}
