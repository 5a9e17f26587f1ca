import { context, type Tracer, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

// What an app's OpenTelemetry SDK does at start-up: without a context manager no span is ever "active", so nothing
// could nest. Registering twice is a no-op.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

/** An in-memory tracer: hand `tracer` to the code under test, then read `spans()`. */
export function memoryTracing(): {
  tracer: Tracer;
  provider: BasicTracerProvider;
  spans: () => ReadableSpan[];
  reset: () => void;
} {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return {
    tracer: provider.getTracer("hopguard-test"),
    provider,
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
  };
}

/** The one finished span with this name; fails the test when there are none or several. */
export function onlySpan(spans: ReadableSpan[], name: string): ReadableSpan {
  const matching = spans.filter((span) => span.name === name);
  if (matching.length !== 1) throw new Error(`expected one "${name}" span, found ${matching.length}`);
  return matching[0] as ReadableSpan;
}

export { trace };
