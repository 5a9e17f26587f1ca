import { writeFileSync } from "node:fs";
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";

/** The name of the demo app's tracer; spans from any other tracer come from another service (see `tracerFor`). */
export const demoTracerName = "hopguard-demo";

/**
 * What an app's OpenTelemetry setup would be, minus the network: spans are kept in memory (and shown to `also`) and
 * written as one OTLP-JSON file — the body an OTLP/HTTP exporter would POST — that OTLP tools can import.
 */
export function traceToFile(also: SpanProcessor) {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), also] });
  return {
    tracer: provider.getTracer(demoTracerName),
    /** A tracer for another service the demo runs in this process (an MCP server), whose spans say so. */
    tracerFor: (service: string) => provider.getTracer(service),
    spanCount: () => exporter.getFinishedSpans().length,
    write(path: string): void {
      writeFileSync(path, JsonTraceSerializer.serializeRequest(exporter.getFinishedSpans()) ?? new Uint8Array());
    },
  };
}
