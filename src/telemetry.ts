import { type Attributes, type Span, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import { approvalRequest } from "./approval.ts";
import type { Decision } from "./decision.ts";
import { DelegationError, HopguardError } from "./errors.ts";
import { version } from "./version.ts";

/**
 * Span attribute names hopguard writes. They are part of the public contract: dashboards and alerts rely on them.
 * GenAI semantic-convention names are used where one fits; everything else is namespaced `hopguard.*`.
 */
export const SpanAttributes = {
  userId: "hopguard.user.id",
  chain: "hopguard.chain",
  depth: "hopguard.chain.depth",
  agentId: "gen_ai.agent.id",
  server: "hopguard.mcp.server",
  toolName: "gen_ai.tool.name",
  toolCallId: "gen_ai.tool.call.id",
  delegateTo: "hopguard.delegate.agent.id",
  decision: "hopguard.decision",
  deniedBy: "hopguard.denied_by",
  reason: "hopguard.reason",
  requestId: "hopguard.cerbos.request_id",
  hopEffects: "hopguard.hop.effects",
  hopPolicies: "hopguard.hop.policies",
  hopCallIds: "hopguard.hop.cerbos_call_ids",
  errorCode: "hopguard.error.code",
  approval: "hopguard.approval",
  toolsOffered: "hopguard.tools.offered",
  toolsCallable: "hopguard.tools.callable",
} as const;

/** Attribute names on each per-hop `hopguard.hop` span event. */
export const HopEventAttributes = {
  principalId: "hopguard.hop.principal.id",
  kind: "hopguard.hop.kind",
  depth: "hopguard.hop.depth",
  effect: "hopguard.hop.effect",
  policy: "hopguard.hop.policy",
  cerbosCallId: "hopguard.hop.cerbos_call_id",
} as const;

/** Span names hopguard starts. */
export const SpanNames = {
  authorize: "hopguard.authorize",
  delegate: "hopguard.delegate",
  listTools: "hopguard.list_tools",
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
 */
export async function recordSpan<T>(options: {
  name: string;
  tracer: Tracer;
  attributes: () => Attributes;
  fn: (span: Span) => Promise<T>;
}): Promise<T> {
  return options.tracer.startActiveSpan(options.name, { kind: SpanKind.INTERNAL }, async (span) => {
    try {
      if (span.isRecording()) span.setAttributes(options.attributes());
      return await options.fn(span);
    } catch (error) {
      if (DelegationError.isInstance(error)) {
        // A refused delegation is a decision, not a failure: the span stays OK and says who refused.
        if (span.isRecording()) {
          span.setAttributes({
            [SpanAttributes.decision]: "deny",
            [SpanAttributes.reason]: error.message,
            [SpanAttributes.deniedBy]: error.decision?.deniedBy ?? error.code,
          });
        }
      } else if (span.isRecording()) {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        span.setAttribute(SpanAttributes.decision, "error");
        if (HopguardError.isInstance(error)) span.setAttribute(SpanAttributes.errorCode, error.code);
      }
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Writes a decision onto its span: the verdict as attributes, and one `hopguard.hop` event per hop. */
export function recordDecision(span: Span, decision: Decision): void {
  if (!span.isRecording()) return;
  span.setAttributes({
    [SpanAttributes.decision]: decision.allowed ? "allow" : "deny",
    [SpanAttributes.reason]: decision.reason,
    [SpanAttributes.requestId]: decision.requestId,
    [SpanAttributes.hopEffects]: decision.hops.map((hop) => hop.effect),
    [SpanAttributes.hopPolicies]: decision.hops.map((hop) => hop.policy),
    [SpanAttributes.hopCallIds]: decision.hops.map((hop) => hop.cerbosCallId),
  });
  if (decision.deniedBy !== undefined) span.setAttribute(SpanAttributes.deniedBy, decision.deniedBy);
  if (approvalRequest(decision) !== undefined) span.setAttribute(SpanAttributes.approval, "required");
  for (const hop of decision.hops) {
    span.addEvent("hopguard.hop", {
      [HopEventAttributes.principalId]: hop.principalId,
      [HopEventAttributes.kind]: hop.kind,
      [HopEventAttributes.depth]: hop.depth,
      [HopEventAttributes.effect]: hop.effect,
      [HopEventAttributes.policy]: hop.policy,
      [HopEventAttributes.cerbosCallId]: hop.cerbosCallId,
    });
  }
}

/** The active trace id, when there is a real one to join Cerbos audit logs to. */
export function activeTraceId(): string | undefined {
  const context = trace.getActiveSpan()?.spanContext();
  return context !== undefined && trace.isSpanContextValid(context) ? context.traceId : undefined;
}
