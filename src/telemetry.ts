import {
  type Attributes,
  context,
  INVALID_SPAN_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { approvalRequest } from "./approval.ts";
import type { ValidatedToolCall } from "./cerbos-request.ts";
import type { Decision } from "./decision.ts";
import { DelegationError, HopguardError } from "./errors.ts";
import { version } from "./version.ts";

/**
 * Span attribute names hopguard writes. They are part of the public contract: dashboards and alerts rely on them.
 * OpenTelemetry semantic-convention names are used where one fits (`error.type`; GenAI's `gen_ai.agent.*` and
 * `gen_ai.tool.*`, so hopguard's spans line up with a framework's `execute_tool` spans in GenAI views); everything
 * else is namespaced `hopguard.*`.
 *
 * @remarks
 * hopguard's spans are not GenAI operations: `hopguard.authorize` checks a tool call, it does not execute it, so it
 * sets no `gen_ai.operation.name` (a GenAI view would count every call twice). Its kind is `INTERNAL`, like the
 * framework's `execute_tool` span it is usually a child of.
 */
export const SpanAttributes = {
  userId: "hopguard.user.id",
  chain: "hopguard.chain",
  depth: "hopguard.chain.depth",
  /** The acting agent's id (semantic convention `gen_ai.agent.id`). */
  agentId: "gen_ai.agent.id",
  /** The acting agent's name — hopguard knows agents by id, so it is the id (semantic convention). */
  agentName: "gen_ai.agent.name",
  server: "hopguard.mcp.server",
  toolName: "gen_ai.tool.name",
  toolCallId: "gen_ai.tool.call.id",
  delegateTo: "hopguard.delegate.agent.id",
  decision: "hopguard.decision",
  deniedBy: "hopguard.denied_by",
  reason: "hopguard.reason",
  requestId: "hopguard.cerbos.request_id",
  /**
   * Where the request id came from: `"trace"` (the active trace id, so Cerbos audit logs join the trace) or
   * `"random"` (a UUID: no span was active — no OpenTelemetry SDK or no context manager registered).
   */
  requestIdSource: "hopguard.request_id.source",
  hopEffects: "hopguard.hop.effects",
  hopPolicies: "hopguard.hop.policies",
  hopCallIds: "hopguard.hop.cerbos_call_ids",
  /** Per hop, where its answer came from: `"pdp"`, or the plan cache's `"plan"` / `"residual"` (see `HopSource`). */
  hopSources: "hopguard.hop.sources",
  /** The hopguard error code when an operation failed (semantic convention `error.type`); the span is ERROR. */
  errorType: "error.type",
  approval: "hopguard.approval",
  approver: "hopguard.approval.approver",
  toolsOffered: "hopguard.tools.offered",
  toolsCallable: "hopguard.tools.callable",
  /** On a listing: resource kinds no Cerbos policy exists for (the PDP answered `NO_MATCH` at every hop). */
  policyMissing: "hopguard.policy.missing",
} as const;

/** Attribute names on each per-hop `hopguard.hop` span event. */
export const HopEventAttributes = {
  principalId: "hopguard.hop.principal.id",
  kind: "hopguard.hop.kind",
  depth: "hopguard.hop.depth",
  effect: "hopguard.hop.effect",
  policy: "hopguard.hop.policy",
  cerbosCallId: "hopguard.hop.cerbos_call_id",
  source: "hopguard.hop.source",
} as const;

/** Span names hopguard starts. */
export const SpanNames = {
  authorize: "hopguard.authorize",
  delegate: "hopguard.delegate",
  listTools: "hopguard.list_tools",
  approval: "hopguard.approval",
} as const;

let globalTracer: Tracer | undefined;

/**
 * The tracer to use when the caller gave none: the global one, a no-op until an SDK is registered. Fetched once: the
 * API's proxy tracer follows a provider registered later, so the hot path need not ask again.
 */
export function defaultTracer(): Tracer {
  globalTracer ??= trace.getTracer("hopguard", version);
  return globalTracer;
}

/**
 * Runs `fn` inside an active span and always ends it. A thrown error marks the span ERROR and is rethrown, except a
 * {@link DelegationError}, which is recorded as a deny.
 * Attributes are only computed when the span records, so an app without an SDK pays close to nothing.
 *
 * @remarks
 * Telemetry never decides: a tracer, span processor or exporter that throws is contained here (the decision then
 * goes unrecorded rather than changed), so a broken pipeline can neither allow a call nor fail an allowed one.
 */
export async function recordSpan<T>(options: {
  name: string;
  tracer: Tracer;
  attributes: () => Attributes;
  fn: (span: Span) => Promise<T>;
}): Promise<T> {
  const span = contain(startSpan(options.tracer, options.name));
  return context.with(trace.setSpan(context.active(), span), async () => {
    try {
      contained(() => {
        if (span.isRecording()) span.setAttributes(options.attributes());
      });
      return await options.fn(span);
    } catch (error) {
      contained(() => recordFailure(span, error));
      throw error;
    } finally {
      contained(() => span.end());
    }
  });
}

/** Records an instant (a person's answer) as a span of its own, ended at once. */
export function recordApprovalSpan(tracer: Tracer, attributes: Attributes): void {
  const span = startSpan(tracer, SpanNames.approval);
  contained(() => {
    if (span.isRecording()) span.setAttributes(attributes);
  });
  contained(() => span.end());
}

/** The span attributes that name a tool call. */
export function toolCallAttributes(call: Pick<ValidatedToolCall, "server" | "tool" | "toolCallId">): Attributes {
  return {
    [SpanAttributes.server]: call.server,
    [SpanAttributes.toolName]: call.tool,
    ...(typeof call.toolCallId === "string" ? { [SpanAttributes.toolCallId]: call.toolCallId } : {}),
  };
}

/**
 * The span as seen by hopguard's own code: every method call is contained, so a span implementation that throws
 * (from `isRecording`, `setAttributes`, `addEvent`, ...) can neither fail nor change a decision.
 */
function contain(span: Span): Span {
  const view: Span = new Proxy(span, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        try {
          const result: unknown = value.apply(target, args);
          // Chained calls (`span.setAttribute(...).setAttribute(...)`) stay contained.
          return result === target ? view : result;
        } catch {
          return property === "isRecording" ? false : undefined;
        }
      };
    },
  });
  return view;
}

function startSpan(tracer: Tracer, name: string): Span {
  try {
    return tracer.startSpan(name, { kind: SpanKind.INTERNAL });
  } catch {
    return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
  }
}

function recordFailure(span: Span, error: unknown): void {
  if (!span.isRecording()) return;
  if (DelegationError.isInstance(error)) {
    // A refused delegation is a decision, not a failure: the span stays OK and says who refused.
    span.setAttributes({
      [SpanAttributes.decision]: "deny",
      [SpanAttributes.reason]: error.message,
      [SpanAttributes.deniedBy]: error.decision?.deniedBy ?? error.code,
    });
    return;
  }
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  span.setAttribute(SpanAttributes.decision, "error");
  span.setAttribute(SpanAttributes.errorType, HopguardError.isInstance(error) ? error.code : errorClass(error));
}

// `error.type` for a failure that is not hopguard's: the error's class, as the semantic convention suggests.
function errorClass(error: unknown): string {
  return error instanceof Error ? error.name : "_OTHER";
}

function contained(record: () => void): void {
  try {
    record();
  } catch {
    // See recordSpan: telemetry failures are the telemetry pipeline's, never the decision's.
  }
}

/** Writes a decision onto its span: the verdict as attributes, and one `hopguard.hop` event per hop. */
export function recordDecision(span: Span, decision: Decision): void {
  contained(() => writeDecision(span, decision));
}

function writeDecision(span: Span, decision: Decision): void {
  if (!span.isRecording()) return;
  span.setAttributes({
    [SpanAttributes.decision]: decision.allowed ? "allow" : "deny",
    [SpanAttributes.reason]: decision.reason,
    [SpanAttributes.requestId]: decision.requestId,
    [SpanAttributes.requestIdSource]: decision.requestId === span.spanContext().traceId ? "trace" : "random",
    [SpanAttributes.hopEffects]: decision.hops.map((hop) => hop.effect),
    [SpanAttributes.hopPolicies]: decision.hops.map((hop) => hop.policy),
    [SpanAttributes.hopCallIds]: decision.hops.map((hop) => hop.cerbosCallId),
    [SpanAttributes.hopSources]: decision.hops.map((hop) => hop.source),
  });
  if (decision.deniedBy !== undefined) span.setAttribute(SpanAttributes.deniedBy, decision.deniedBy);
  const acting = decision.chain.length > 1 ? decision.chain.at(-1) : undefined;
  if (acting !== undefined) span.setAttribute(SpanAttributes.agentName, acting);
  if (approvalRequest(decision) !== undefined) span.setAttribute(SpanAttributes.approval, "required");
  for (const hop of decision.hops) {
    span.addEvent("hopguard.hop", {
      [HopEventAttributes.principalId]: hop.principalId,
      [HopEventAttributes.kind]: hop.kind,
      [HopEventAttributes.depth]: hop.depth,
      [HopEventAttributes.effect]: hop.effect,
      [HopEventAttributes.policy]: hop.policy,
      [HopEventAttributes.cerbosCallId]: hop.cerbosCallId,
      [HopEventAttributes.source]: hop.source,
    });
  }
}

/** The active trace id, when there is a real one to join Cerbos audit logs to. */
export function activeTraceId(): string | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  return context !== undefined && trace.isSpanContextValid(context) ? context.traceId : undefined;
}
