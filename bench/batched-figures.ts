import type { GRPC } from "@cerbos/grpc";
import { createGuard, type Delegation, type PdpClient, type ToolCall } from "../src/index.ts";
import { cpuPerCall, interleavedLatency, type LatencyFigure, round, throughput } from "./measure.ts";

/**
 * One AuthZEN batch per decision against one `checkResources` per hop (hopguard's fallback), at depth 1, 3 and 5,
 * timed interleaved with the raw check they are both measured against.
 *
 * - `guard.depth{n}.batched`: latency and `ratioP50ToRaw`, timed in turns with the raw check; `perHopP50Ms` and
 *   `perHopRatioP50ToRaw` for per-hop rounds, timed in turns of their own with the raw check.
 * - `batched.profile`: this process's CPU per depth-3 decision, batched and per hop, against a raw check.
 * - `throughput.batched`: depth-3 decisions per second at 64 in flight, batched and per hop.
 */
export async function batchedFigures(options: {
  client: GRPC;
  user: { id: string; roles: string[]; attr: Record<string, string> };
  call: ToolCall;
  /** The raw check of run.ts: one principal, one resource, one action. */
  rawRequest: Parameters<GRPC["checkResource"]>[0];
  count: number;
}): Promise<Record<string, Record<string, number>>> {
  const { client, user, call, rawRequest, count } = options;
  // The stock client batches; the same client behind a plain object has no batch to offer, so every hop is asked on
  // its own: both go to the same PDP over the same channel.
  const perHopClient: PdpClient = {
    checkResources: (request, callOptions) => client.checkResources(request, callOptions),
    planResources: (request, callOptions) => client.planResources(request, callOptions),
  };
  const batched = await chainsUpTo(createGuard({ client }).forUser(user), 5);
  const perHop = await chainsUpTo(createGuard({ client: perHopClient }).forUser(user), 5);
  const at = (chains: Delegation[], depth: number) => chains[depth - 1] as Delegation;
  // Fail loudly rather than time the wrong path: the batched chains must answer without Cerbos call ids.
  const probe = await at(batched, 3).authorize(call);
  if (!probe.allowed || probe.hops.some((hop) => hop.cerbosCallId !== "")) {
    throw new Error("bench: the batched guard did not answer with one allowed AuthZEN batch");
  }

  const rawCheck = () => client.checkResource(rawRequest);
  const depths = [1, 3, 5] as const;
  // Two sets, each interleaved with its own raw check. Per-hop rounds send up to five requests at once, and the turn
  // after one inherits a PDP still busy with them: timed in the same turns, batched depth 3 reads 1.27–1.35× raw
  // instead of 1.09–1.13× (bench/README.md).
  const [raw, ...batchedFigures] = (await interleavedLatency(
    [rawCheck, ...depths.map((depth) => () => at(batched, depth).authorize(call))],
    count,
  )) as [LatencyFigure, ...LatencyFigure[]];
  const [perHopRaw, ...perHopFigures] = (await interleavedLatency(
    [rawCheck, ...depths.map((depth) => () => at(perHop, depth).authorize(call))],
    count,
  )) as [LatencyFigure, ...LatencyFigure[]];

  const figures: Record<string, Record<string, number>> = {};
  for (const [index, depth] of depths.entries()) {
    const batchedFigure = batchedFigures[index] as LatencyFigure;
    const perHopFigure = perHopFigures[index] as LatencyFigure;
    figures[`guard.depth${depth}.batched`] = {
      ...batchedFigure,
      ratioP50ToRaw: round(batchedFigure.p50Ms / raw.p50Ms, 3),
      rawP50Ms: raw.p50Ms,
      perHopP50Ms: perHopFigure.p50Ms,
      perHopRatioP50ToRaw: round(perHopFigure.p50Ms / perHopRaw.p50Ms, 3),
    };
  }

  figures["batched.profile"] = {
    rawClientCpuMs: round(await cpuPerCall(rawCheck, count)),
    batchedClientCpuMsDepth3: round(await cpuPerCall(() => at(batched, 3).authorize(call), count)),
    perHopClientCpuMsDepth3: round(await cpuPerCall(() => at(perHop, 3).authorize(call), count)),
  };

  const total = 6000;
  const batchedPerSecond = await throughput(() => at(batched, 3).authorize(call), total, 64);
  const perHopPerSecond = await throughput(() => at(perHop, 3).authorize(call), total, 64);
  const rawPerSecond = await throughput(rawCheck, total, 64);
  figures["throughput.batched"] = {
    batchedDepth3PerSecond: Math.round(batchedPerSecond),
    perHopDepth3PerSecond: Math.round(perHopPerSecond),
    rawPerSecond: Math.round(rawPerSecond),
    ratioToPerHop: round(batchedPerSecond / perHopPerSecond, 3),
    calls: total,
  };
  return figures;
}

async function chainsUpTo(root: Delegation, hops: number): Promise<Delegation[]> {
  const chains = [root];
  for (let i = 1; i < hops; i++) {
    chains.push(await (chains[i - 1] as Delegation).delegate({ id: `agent-${i}`, roles: ["agent"] }));
  }
  return chains;
}
