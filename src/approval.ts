import type { Value } from "@cerbos/core";
import { deepFreeze } from "./actor.ts";
import type { Decision } from "./decision.ts";

/**
 * The output a Cerbos rule emits to ask for a human's approval before an allowed call runs:
 *
 * ```yaml
 * output:
 *   when:
 *     ruleActivated: '{"approval": "required", "reason": "moving files needs a human OK"}'
 * ```
 */
export interface ApprovalOutput {
  approval: "required";
  reason?: string;
}

/** What a decision asks of a human, if anything. */
export interface ApprovalRequest {
  /** The distinct reasons the rules gave, in chain order; empty when they gave none. */
  readonly reasons: readonly string[];
  /** The hops whose rules asked. */
  readonly requestedBy: readonly string[];
}

/**
 * The approval an allowed decision still needs, or `undefined` when it needs none.
 *
 * @remarks
 * Only an allowed decision can need approval: an approval never turns a deny into an allow.
 */
export function approvalRequest(decision: Decision): ApprovalRequest | undefined {
  if (!decision.allowed) return undefined;
  const asking = decision.outputs.filter((output) => isApprovalOutput(output.value));
  if (asking.length === 0) return undefined;
  return Object.freeze({
    reasons: Object.freeze([
      ...new Set(
        asking.flatMap((output) => {
          const reason = (output.value as { reason?: unknown }).reason;
          return typeof reason === "string" ? [reason] : [];
        }),
      ),
    ]),
    requestedBy: Object.freeze([...new Set(asking.map((output) => output.principalId))]),
  });
}

function isApprovalOutput(value: Value | undefined): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && value.approval === "required";
}

/** A person's answer to an {@link ApprovalRequest}, as an adapter learned it. */
export interface ApprovalAnswer {
  /** Only `true` approves; anything else is a refusal. */
  readonly approved: boolean;
  /** Who answered, when the approval flow says (a user id, an email). */
  readonly approver?: string | undefined;
  /** What they said, if anything. */
  readonly reason?: string | undefined;
}

/**
 * The decision for an allowed call whose required approval was not given (declined, or no one to ask): a deny by
 * `"approval"`, with the PDP's per-hop answers kept for the audit trail.
 */
export function declinedApproval(decision: Decision, reason: string): Decision {
  return deepFreeze({ ...decision, allowed: false, deniedBy: "approval", reason });
}
