import type { Tracer } from "@opentelemetry/api";
import { type ApprovalRequest, approvalRequest } from "./approval.ts";
import type { ToolCall } from "./cerbos-request.ts";
import { currentDelegation } from "./current-delegation.ts";
import type { Decision } from "./decision.ts";
import type { CallOptions, Delegation } from "./delegation.ts";
import { HopguardError, NoDelegationError } from "./errors.ts";
import { defaultTracer, recordSpan, SpanAttributes, SpanNames } from "./telemetry.ts";

/** What an adapter should do with a tool call. */
export type ToolCallOutcome =
  | { readonly type: "allowed"; readonly decision: Decision }
  | { readonly type: "approval-required"; readonly decision: Decision; readonly approval: ApprovalRequest }
  | {
      readonly type: "denied";
      /** The PDP's decision: it answered, and denied. */
      readonly decision: Decision;
      readonly error: undefined;
      readonly reason: string;
    }
  | {
      readonly type: "denied";
      readonly decision: undefined;
      /** What failed instead of a decision: no chain, bad input, PDP unavailable, a failing mapper. */
      readonly error: HopguardError;
      readonly reason: string;
    };

/**
 * The first delegation found, in the order given, falling back to the ambient one set by `runAs`.
 * Adapters pass the explicit option first, then the framework's context.
 */
export function resolveDelegation(...candidates: readonly unknown[]): Delegation | undefined {
  for (const candidate of candidates) {
    if (isDelegation(candidate)) return candidate;
  }
  return currentDelegation();
}

/**
 * Authorizes a tool call for an adapter and never throws: no chain, bad input and an unreachable PDP all come back
 * as `denied`, so that nothing runs unless the PDP allowed it.
 */
export async function decideToolCall(
  delegation: Delegation | undefined,
  call: ToolCall,
  options: CallOptions & { tracer?: Tracer | undefined } = {},
): Promise<ToolCallOutcome> {
  try {
    if (delegation === undefined) return await refuseWithoutChain(call, options.tracer ?? defaultTracer());
    const decision = await delegation.authorize(call, options);
    if (!decision.allowed) return { type: "denied", decision, error: undefined, reason: decision.reason };
    const approval = approvalRequest(decision);
    return approval === undefined ? { type: "allowed", decision } : { type: "approval-required", decision, approval };
  } catch (error) {
    // Anything else (a bug in a custom mapToolCall, say) is still a refusal, and keeps what went wrong as its cause.
    const failure = HopguardError.isInstance(error)
      ? error
      : new HopguardError("authorization_failed", `authorization failed: ${describe(error)}`, { cause: error });
    return { type: "denied", decision: undefined, error: failure, reason: failure.message };
  }
}

/** The text a model reads when hopguard refuses a call: what was refused and why, nothing it could exploit. */
export function refusalText(call: Pick<ToolCall, "server" | "tool">, reason: string): string {
  return `hopguard refused ${call.server}/${call.tool}: ${reason}`;
}

async function refuseWithoutChain(call: ToolCall, tracer: Tracer): Promise<never> {
  return recordSpan({
    name: SpanNames.authorize,
    tracer,
    attributes: () => ({
      [SpanAttributes.server]: String(call.server),
      [SpanAttributes.toolName]: String(call.tool),
      ...(typeof call.toolCallId === "string" ? { [SpanAttributes.toolCallId]: call.toolCallId } : {}),
    }),
    fn: async () => {
      throw new NoDelegationError(`tool ${call.server}/${call.tool}`);
    },
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isDelegation(value: unknown): value is Delegation {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Delegation).authorize === "function" &&
    typeof (value as Delegation).delegate === "function" &&
    Array.isArray((value as Delegation).chain)
  );
}
