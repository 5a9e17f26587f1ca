import { type Context, createTraceState, isSpanContextValid, ROOT_CONTEXT, trace } from "@opentelemetry/api";

// W3C Trace Context, version 00 (later versions may append fields, which a version-00 reader ignores).
const traceparentFormat = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The caller's trace, as a context to run a request's decisions and handler in: from `params._meta.traceparent` (and
 * `tracestate`), where the OpenTelemetry MCP conventions and hopguard's client transport put it, else from the HTTP
 * request's `traceparent` header. `undefined` when neither holds a valid one: the request then runs in whatever
 * context is active.
 *
 * @remarks
 * A trace context only joins spans together; it never takes part in a decision, so an unauthenticated one is harmless.
 */
export function callerTraceContext(meta: unknown, headers: unknown): Context | undefined {
  return (
    fromCarrier(meta, (key) => (meta as Record<string, unknown>)[key]) ??
    fromCarrier(headers, (key) => (headers as Record<string, unknown>)[key])
  );
}

function fromCarrier(carrier: unknown, read: (key: string) => unknown): Context | undefined {
  if (typeof carrier !== "object" || carrier === null) return undefined;
  const traceparent = single(read("traceparent"));
  const match = traceparent === undefined ? null : traceparentFormat.exec(traceparent.trim().toLowerCase());
  if (match === null) return undefined;
  const [, version, traceId = "", spanId = "", flags = "00", rest] = match;
  // Version ff is forbidden; version 00 has exactly four fields.
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  const tracestate = single(read("tracestate"));
  let traceState: ReturnType<typeof createTraceState> | undefined;
  try {
    traceState = tracestate === undefined ? undefined : createTraceState(tracestate);
  } catch {
    traceState = undefined;
  }
  const spanContext = {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & 0xff,
    isRemote: true,
    ...(traceState === undefined ? {} : { traceState }),
  };
  return isSpanContextValid(spanContext) ? trace.setSpanContext(ROOT_CONTEXT, spanContext) : undefined;
}

/** A header may arrive as a list of values; only one unambiguous value is used. */
function single(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  return Array.isArray(value) && value.length === 1 && typeof value[0] === "string" ? value[0] : undefined;
}
