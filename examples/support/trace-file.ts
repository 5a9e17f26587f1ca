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

/**
 * What an app's OpenTelemetry setup would be, minus the network: spans are kept in memory (and shown to `also`) and
 * written as one OTLP-JSON file — the body an OTLP/HTTP exporter would POST — that OTLP tools can import.
 */
export function traceToFile(also: SpanProcessor) {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), also] });
  return {
    tracer: provider.getTracer("hopguard-demo"),
    spanCount: () => exporter.getFinishedSpans().length,
    write(path: string): void {
      writeFileSync(path, JsonTraceSerializer.serializeRequest(exporter.getFinishedSpans()) ?? new Uint8Array());
    },
  };
}
