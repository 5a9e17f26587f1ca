import type { Tracer } from "@opentelemetry/api";
import { type ApprovalRequest, approvalRequest } from "./approval.ts";
import { type ToolCall, type ValidatedToolCall, validateToolCall } from "./cerbos-request.ts";
import { currentDelegation } from "./current-delegation.ts";
import type { Decision } from "./decision.ts";
import { type CallOptions, Delegation } from "./delegation.ts";
import { HopguardError, NoDelegationError } from "./errors.ts";
import { defaultTracer, recordSpan, SpanNames, toolCallAttributes } from "./telemetry.ts";

/** What an adapter should do with a tool call. */
export type ToolCallOutcome =
  | {
      readonly type: "allowed";
      readonly decision: Decision;
      /** The snapshot that was authorized: send or execute exactly this, never the caller's object. */
      readonly call: ValidatedToolCall;
    }
  | {
      readonly type: "approval-required";
      readonly decision: Decision;
      readonly approval: ApprovalRequest;
      /** The snapshot that was authorized: send or execute exactly this, never the caller's object. */
      readonly call: ValidatedToolCall;
    }
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
 * The chain a guarded call acts for, from the candidates an adapter found (its explicit option first, then the
 * framework's context) and the ambient one set by `runAs`.
 *
 * @remarks
 * The deepest chain in effect decides: the first candidate found is used unless a later one — the ambient chain
 * included — was delegated from it, in which case that descendant is used. So a tool bound to an orchestrator's
 * chain, called from inside a sub-agent's run, acts for the sub-agent's longer chain: every hop and the narrower
 * scope are checked, and a sub-agent can never borrow its parent's rights. Candidates that are not chains made by a
 * hopguard guard (see {@link Delegation.isDelegation}) are ignored.
 */
export function resolveDelegation(...candidates: readonly unknown[]): Delegation | undefined {
  let chosen: Delegation | undefined;
  for (const candidate of [...candidates, currentDelegation()]) {
    if (!Delegation.isDelegation(candidate)) continue;
    if (chosen === undefined || candidate.isDescendantOf(chosen)) chosen = candidate;
  }
  return chosen;
}

/**
 * Authorizes a tool call for an adapter and never throws: no chain, bad input and an unreachable PDP all come back
 * as `denied`, so that nothing runs unless the PDP allowed it. An allowed outcome carries the snapshot that was
 * authorized (`outcome.call`): adapters send or execute that, so what was checked is exactly what runs.
 */
export async function decideToolCall(
  delegation: Delegation | undefined,
  call: ToolCall | ValidatedToolCall,
  options: CallOptions & { tracer?: Tracer | undefined } = {},
): Promise<ToolCallOutcome> {
  try {
    // Only a chain made by a guard is asked: a look-alike object with an `authorize` of its own never is.
    if (!Delegation.isDelegation(delegation)) {
      return await refuseWithoutChain(call, options.tracer ?? defaultTracer());
    }
    // The call is read once, inside authorize; the decision's subject is the snapshot that was decided on.
    const decision = await delegation.authorize(call, options);
    if (!decision.allowed) return { type: "denied", decision, error: undefined, reason: decision.reason };
    const { subject } = decision;
    if (subject.type !== "tool")
      throw new HopguardError("authorization_failed", "the decision is not about a tool call");
    const approval = approvalRequest(decision);
    return approval === undefined
      ? { type: "allowed", decision, call: subject }
      : { type: "approval-required", decision, approval, call: subject };
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
  const snapshot = snapshotOrUndefined(call);
  const names = { server: String(snapshot?.server ?? "?"), tool: String(snapshot?.tool ?? "?") };
  return recordSpan({
    name: SpanNames.authorize,
    tracer,
    attributes: () => toolCallAttributes({ ...names, toolCallId: snapshot?.toolCallId }),
    fn: async () => {
      throw new NoDelegationError(`tool ${names.server}/${names.tool}`);
    },
  });
}

function snapshotOrUndefined(call: ToolCall | ValidatedToolCall): ValidatedToolCall | undefined {
  try {
    return validateToolCall(call);
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
