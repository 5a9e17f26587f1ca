// npm run bench: every figure next to its baseline, measured in one run on one local PDP, printed as a table and
// written to bench/results.json (schema in bench/README.md). Shapes are fixed (sizes, counts, tool names), so two
// runs differ only by the machine's noise.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Principal } from "@cerbos/core";
import { createGuard, type Delegation, type PdpClient, type ToolDescriptor } from "../src/index.ts";
import { startLocalPdp } from "../src/local-pdp.ts";
import { batchedFigures } from "./batched-figures.ts";
import { cachedFigures } from "./cached-figures.ts";
import { cpuPerCall, interleavedLatency, type LatencyFigure, round, throughput } from "./measure.ts";
import { planCacheFigures } from "./plan-cache-figures.ts";
import { toolFigures } from "./tool-figures.ts";

const policyDir = fileURLToPath(new URL("./policies/", import.meta.url));
const resultsPath = fileURLToPath(new URL("./results.json", import.meta.url));
const latencyCount = 1000;
const user = { id: "alice", roles: ["user"], attr: { department: "engineering", workspace: "/workspace/alice" } };
const call = { server: "bench", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };

type Figure = Record<string, number | string>;
const figures: Record<string, Figure> = {};
const record = (name: string, figure: Figure): void => {
  figures[name] = figure;
  console.log(`  ${name.padEnd(22)} ${describe(figure)}`);
};

console.log("hopguard bench: warming up, then measuring each figure next to its baseline\n");

const pdpStarts: number[] = [];
for (let i = 0; i < 5; i++) {
  const started = performance.now();
  const pdp = await startLocalPdp({ policyDir });
  pdpStarts.push(performance.now() - started);
  await pdp.stop();
}
pdpStarts.sort((a, b) => a - b);

const pdp = await startLocalPdp({ policyDir });
try {
  const client = pdp.client;
  const guard = createGuard({ client });
  const chains = await chainsUpTo(guard.forUser(user), 5);
  const depth = (n: number) => chains[n - 1] as Delegation;

  // 1. The floor: one principal, one resource, one action, straight through @cerbos/grpc.
  const rawPrincipal = principalAsSent(depth(1));
  const rawRequest = {
    principal: rawPrincipal,
    resource: {
      kind: "mcp::bench",
      id: call.tool,
      attr: { server: call.server, tool: call.tool, arguments: call.arguments, annotations: {} },
    },
    actions: [call.tool],
  };
  const rawCheck = () => client.checkResource(rawRequest);
  const rawInParallel = (n: number) => () => Promise.all(Array.from({ length: n }, rawCheck));
  const [raw, depth1, raw3, depth3, raw5, depth5] = await interleavedLatency(
    [
      rawCheck,
      () => depth(1).authorize(call),
      rawInParallel(3),
      () => depth(3).authorize(call),
      rawInParallel(5),
      () => depth(5).authorize(call),
    ],
    latencyCount,
  );
  record("raw", { ...(raw as LatencyFigure) });

  // 2. A guarded decision at depth 1, 3 and 5: one check per hop, in parallel. `floorP50Ms` is that many raw checks
  // in parallel, what any per-hop scheme costs before hopguard does anything.
  for (const [n, figure, floor] of [
    [1, depth1, raw],
    [3, depth3, raw3],
    [5, depth5, raw5],
  ] as const) {
    const guarded = figure as LatencyFigure;
    record(`guard.depth${n}`, {
      ...guarded,
      ratioP50ToRaw: round(guarded.p50Ms / (raw as LatencyFigure).p50Ms, 3),
      floorP50Ms: (floor as LatencyFigure).p50Ms,
      ratioP50ToFloor: round(guarded.p50Ms / (floor as LatencyFigure).p50Ms, 3),
    });
  }

  // 2b. Decisions in one AuthZEN batch and with one checkResources per hop, each timed in turns with a raw check.
  const batched = await batchedFigures({ client, user, call, rawRequest, count: latencyCount });
  for (const [name, figure] of Object.entries(batched)) record(name, figure);

  // Where a raw check's time goes: this process's CPU (the gRPC client encoding and decoding) against the wall.
  const clientCpuMs = await cpuPerCall(rawCheck, latencyCount);
  record("raw.profile", {
    wallP50Ms: (raw as LatencyFigure).p50Ms,
    clientCpuMsPerCheck: round(clientCpuMs),
    clientCpuShareOfP50: round(clientCpuMs / (raw as LatencyFigure).p50Ms, 3),
    guardedClientCpuMsDepth3: round(await cpuPerCall(() => depth(3).authorize(call), latencyCount)),
  });

  // 3. A tool call through each adapter, against the same call unguarded.
  for (const [name, figure] of Object.entries(await toolFigures(depth(1), latencyCount))) record(name, figure);

  // 4. Listing N tools: hopguard's batched listing against one sequential check per tool (FastMCP's middleware).
  for (const n of [10, 100, 1000]) {
    const tools = Array.from({ length: n }, (_, i): ToolDescriptor => ({ server: "bench", tool: `tool_${i}` }));
    const runs = n === 1000 ? 10 : 50;
    const [listed, sequential, listedDepth3] = (await interleavedLatency(
      [
        () => depth(1).callableTools(tools),
        () => sequentialListing(client, rawPrincipal, tools),
        () => depth(3).callableTools(tools),
      ],
      runs,
      3,
    )) as [LatencyFigure, LatencyFigure, LatencyFigure];
    record(`list.${n}`, {
      p50Ms: listed.p50Ms,
      p99Ms: listed.p99Ms,
      count: listed.count,
      sequentialP50Ms: sequential.p50Ms,
      speedup: round(sequential.p50Ms / listed.p50Ms, 1),
      depth3P50Ms: listedDepth3.p50Ms,
    });
  }

  // 4b. The plan cache: warm decisions, cached throughput, a warm listing and memory, through a guard that has one.
  const cached = await cachedFigures({
    client,
    user,
    policyDir,
    rawPrincipal,
    count: latencyCount,
    sequentialListingP50Ms: Number(figures["list.1000"]?.sequentialP50Ms),
    gc,
  });
  for (const [name, figure] of Object.entries(cached)) record(name, figure);

  // 5. Throughput at 64 in flight: guarded calls at depth 3 against raw checks.
  const total = 6000;
  const rawPerSecond = await throughput(() => client.checkResource(rawRequest), total, 64);
  const guardedPerSecond = await throughput(() => depth(3).authorize(call), total, 64);
  record("throughput", {
    guardedDepth3PerSecond: Math.round(guardedPerSecond),
    rawPerSecond: Math.round(rawPerSecond),
    ratio: round(guardedPerSecond / rawPerSecond, 3),
    pdpRequestsPerSecondGuarded: Math.round(guardedPerSecond * 3),
    calls: total,
  });

  // 6. Memory: resident set before and after 100k guarded calls (depth 1, 64 in flight), after a full GC.
  const calls = 100_000;
  gc();
  const before = process.memoryUsage();
  await throughput(() => depth(1).authorize(call), calls, 64);
  gc();
  const after = process.memoryUsage();
  record("memory", {
    calls,
    rssBeforeMiB: mib(before.rss),
    rssAfterMiB: mib(after.rss),
    rssGrowthMiB: mib(after.rss - before.rss),
    heapUsedBeforeMiB: mib(before.heapUsed),
    heapUsedAfterMiB: mib(after.heapUsed),
    heapGrowthMiB: mib(after.heapUsed - before.heapUsed),
  });

  // 7. startLocalPdp until /_cerbos/health answers, median of 5.
  record("pdp.start", {
    medianMs: round(pdpStarts[2] ?? 0, 1),
    minMs: round(pdpStarts[0] ?? 0, 1),
    maxMs: round(pdpStarts[4] ?? 0, 1),
    count: 5,
  });
} finally {
  await pdp.stop();
}

// 8. The plan cache's soundness run (100,000+ hop decisions, cached against live) and its warm figures without a
// guard around them, on a PDP of their own serving the repo's policies/.
for (const [name, figure] of Object.entries(await planCacheFigures())) record(name, figure);

writeFileSync(
  resultsPath,
  `${JSON.stringify(
    {
      schema: 1,
      createdAt: new Date().toISOString(),
      environment: {
        node: process.version,
        cpus: (await import("node:os")).cpus().length,
        platform: `${process.platform}-${process.arch}`,
      },
      figures,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nwrote ${resultsPath}`);

async function chainsUpTo(root: Delegation, hops: number): Promise<Delegation[]> {
  const chains = [root];
  for (let i = 1; i < hops; i++) {
    chains.push(await (chains[i - 1] as Delegation).delegate({ id: `agent-${i}`, roles: ["agent"] }));
  }
  return chains;
}

/** The principal hopguard sends for the delegation's acting hop, so raw and guarded carry the same attributes. */
function principalAsSent(delegation: Delegation): Principal {
  return {
    id: delegation.user.id,
    roles: [...delegation.user.roles],
    attr: {
      ...delegation.user.attr,
      onBehalfOf: { id: delegation.user.id, roles: [...delegation.user.roles], attr: { ...delegation.user.attr } },
      chain: [...delegation.chain],
      depth: delegation.depth,
      kind: "user",
      scope: { maxDepth: delegation.scope.maxDepth },
    },
  };
}

async function sequentialListing(
  client: PdpClient & Pick<typeof pdp.client, "checkResource">,
  principal: Principal,
  tools: readonly ToolDescriptor[],
): Promise<number> {
  let callable = 0;
  for (const tool of tools) {
    const result = await client.checkResource({
      principal,
      resource: { kind: `mcp::${tool.server}`, id: tool.tool, attr: { server: tool.server, tool: tool.tool } },
      actions: [tool.tool],
    });
    if (result.isAllowed(tool.tool)) callable++;
  }
  return callable;
}

function describe(figure: Figure): string {
  return Object.entries(figure)
    .map(([key, value]) => `${key}=${value}`)
    .join("  ");
}

function mib(bytes: number): number {
  return round(bytes / 1024 / 1024, 1);
}

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error("run with --expose-gc (npm run bench does)");
  collect();
}
