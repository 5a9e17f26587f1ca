import { writeFileSync } from "node:fs";
import { context, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";

/** The name of the demo app's tracer; spans from any other tracer come from another service (see `tracerFor`). */
export const demoTracerName = "hopguard-demo";

/** The agent host's `service.name`: the process running the agents and the client guards. */
export const agentHostService = "hopguard-demo-agent-host";

/**
 * What an app's OpenTelemetry setup would be, minus the network: spans are kept in memory (and shown to `also`) and
 * written as one OTLP-JSON file — the body an OTLP/HTTP exporter would POST — that OTLP tools can import. Each
 * service the demo runs in this process has a provider of its own, so its spans carry its own `service.name`.
 */
export function traceToFile(also: SpanProcessor) {
  // Without a context manager no span is ever active: nothing would nest, and Cerbos request ids would not be trace ids.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  const exporter = new InMemorySpanExporter();
  const providerFor = (service: string) =>
    new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": service }),
      spanProcessors: [new SimpleSpanProcessor(exporter), also],
    });
  const tracer = providerFor(agentHostService).getTracer(demoTracerName);
  return {
    tracer,
    /** A tracer for another service the demo runs in this process (an MCP server): its spans say so. */
    tracerFor: (service: string, serviceName: string): Tracer => providerFor(serviceName).getTracer(service),
    /** Runs one scenario under a root span of its own: the trace file opens as one readable trace per scenario. */
    scenario: <T>(name: string, run: () => Promise<T>): Promise<T> =>
      tracer.startActiveSpan(`demo: ${name}`, async (span) => {
        try {
          return await run();
        } finally {
          span.end();
        }
      }),
    spanCount: () => exporter.getFinishedSpans().length,
    write(path: string): void {
      writeFileSync(path, JsonTraceSerializer.serializeRequest(exporter.getFinishedSpans()) ?? new Uint8Array());
    },
  };
}
