import { writeFileSync } from "node:fs";
import { context } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

/**
 * What an app's OpenTelemetry setup would be, minus the network: spans are kept in memory and written as one
 * OTLP-JSON file (the body an OTLP/HTTP exporter would POST), which any OTLP tool can import.
 */
export function traceToFile() {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return {
    tracer: provider.getTracer("hopguard-demo"),
    provider,
    spanCount: () => exporter.getFinishedSpans().length,
    write(path: string): void {
      const body = JsonTraceSerializer.serializeRequest(exporter.getFinishedSpans());
      writeFileSync(path, body ?? new Uint8Array());
    },
  };
}
