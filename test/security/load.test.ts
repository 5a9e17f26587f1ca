// 10,000 guarded MCP calls through a real (in-memory) MCP server and the shared PDP, many at once: every call gets
// exactly one decision, exactly the allowed ones run, and the run leaves no handle, listener or rejection behind.
import { getEventListeners, setMaxListeners } from "node:events";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { expect, test } from "vitest";
import { guardMcpClient } from "../../src/adapters/mcp/index.ts";
import { createGuard, SpanAttributes, SpanNames } from "../../src/index.ts";
import { startRecordingServer } from "../support/mcp.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { alice, scribe } from "../support/users.ts";
import { until } from "./support/process-state.ts";
import { drainTasks, watchUnhandledRejections } from "./support/unhandled.ts";

const total = 10_000;
const concurrency = 64;
/** One call in five reads outside alice's workspace, which the policies deny. */
const isDenied = (index: number): boolean => index % 5 === 4;
const pathOf = (index: number): string =>
  isDenied(index) ? `/workspace/bob/${index}.md` : `/workspace/alice/${index}.md`;

const pdp = sharedPdpClient();
const unhandled = watchUnhandledRejections();

function countByType(resources: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const type of resources) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** Types whose count grew from `before` to `after`: handles something left behind. */
function grown(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).filter(([type, count]) => count > (before[type] ?? 0)));
}

function processListeners(): Record<string, number> {
  return Object.fromEntries(process.eventNames().map((name) => [String(name), process.listenerCount(name)]));
}

/** What the authorize spans say, as counts: a helper, so that the test itself holds no span afterwards. */
function decisionSpans(exporter: InMemorySpanExporter) {
  const spans = exporter.getFinishedSpans().filter((span) => span.name === SpanNames.authorize);
  return {
    spans: spans.length,
    requestIds: new Set(spans.map((span) => span.attributes[SpanAttributes.requestId])).size,
    decisions: countByType(spans.map((span) => String(span.attributes[SpanAttributes.decision]))),
  };
}

/** How many abort listeners one plain, unguarded SDK tool call leaves on the signal it was given. */
async function sdkAbortListenersPerCall(): Promise<number> {
  const plain = await startRecordingServer();
  try {
    const probe = new AbortController();
    await plain.client.callTool({ name: "read_file", arguments: { path: pathOf(0) } }, undefined, {
      signal: probe.signal,
    });
    return getEventListeners(probe.signal, "abort").length;
  } finally {
    await plain.close();
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

// About 10 s on an idle 2-core machine, nearly all of it the PDP answering 20,000 hop checks; the 60 s limit leaves
// room for a busy machine, and the test asserts no timing.
test(`${total} guarded MCP calls at concurrency ${concurrency}: one decision span each, exactly the allowed ones run, nothing leaks`, async () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  // A long deadline: a deadline timer hopguard forgot to clear would still be pending when the handles are counted.
  const chain = await createGuard({ client: pdp, tracer: provider.getTracer("load"), timeoutMs: 120_000 })
    .forUser(alice)
    .delegate(scribe);
  const server = await startRecordingServer();
  try {
    const filesystem = guardMcpClient(server.client, { server: "filesystem", delegation: chain });
    // One signal for the whole run, as an agent loop would pass: every call adds to it and must take back what it added.
    let run: AbortController | undefined = new AbortController();
    // The SDK's listeners (see below) pile up on it; a warning about them would be noise, the count below is the check.
    setMaxListeners(0, run.signal);
    const call = (index: number) =>
      filesystem.callTool(
        { name: "read_file", arguments: { path: pathOf(index) } },
        undefined,
        run === undefined ? {} : { signal: run.signal },
      );

    // The MCP SDK (1.32) adds an abort listener per request it sends and never removes it: measure that, so the
    // run can tell its listeners from hopguard's. hopguard itself must leave none behind.
    const sdkListenersPerCall = await sdkAbortListenersPerCall();

    // Warm up (connections, the tool listing, lazy modules), so the baseline holds what a running app holds.
    for (let index = 0; index < concurrency; index++) await call(index);
    server.executed.length = 0;
    exporter.reset();
    await drainTasks();
    gc?.();
    const heapBefore = process.memoryUsage().heapUsed;
    const resourcesBefore = countByType(process.getActiveResourcesInfo());
    const listenersBefore = processListeners();
    const signalListenersBefore = getEventListeners(run.signal, "abort").length;

    const results: CallToolResult[] = new Array(total);
    let next = 0;
    let inFlight = 0;
    let mostInFlight = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const index = next++;
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
        results[index] = (await call(index)) as CallToolResult;
        inFlight--;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));

    // Exactly the allowed calls ran, each with its own arguments; every denied one was refused.
    const denied = total / 5;
    expect(mostInFlight).toBe(concurrency);
    expect(server.executed).toHaveLength(total - denied);
    for (let index = 0; index < total; index++) {
      const result = results[index];
      if (isDenied(index)) {
        expect(result?.isError).toBe(true);
        expect(result?.content[0]).toMatchObject({ text: expect.stringContaining('denied by user "alice"') });
      } else {
        expect(result?.isError).toBeFalsy();
        expect(result?.content).toEqual([{ type: "text", text: `contents of ${pathOf(index)}` }]);
      }
    }

    // One decision span per call: allow or deny as the PDP said, none lost, none doubled, none an error.
    expect(decisionSpans(exporter)).toEqual({
      spans: total,
      requestIds: total,
      decisions: { allow: total - denied, deny: denied },
    });

    // Nothing left behind: none of hopguard's listeners on the run's signal, no extra handles once timers have fired,
    // no process hooks.
    expect(getEventListeners(run.signal, "abort").length - signalListenersBefore).toBe(
      sdkListenersPerCall * server.executed.length,
    );
    await until(
      "handles opened by the run are closed",
      () => Object.keys(grown(resourcesBefore, countByType(process.getActiveResourcesInfo()))).length === 0,
      5000,
    ).catch(() => undefined);
    expect(grown(resourcesBefore, countByType(process.getActiveResourcesInfo()))).toEqual({});
    expect(processListeners()).toEqual(listenersBefore);
    expect(unhandled).toEqual([]);

    if (gc !== undefined) {
      // Only with --expose-gc: with the spans, the results and the run's signal (which holds the SDK's listeners)
      // dropped, the 10,000 calls keep (almost) nothing alive.
      exporter.reset();
      results.length = 0;
      run = undefined;
      gc();
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(8 * 1024 * 1024);
    }
  } finally {
    await server.close();
    await provider.shutdown();
  }
}, 60_000);
