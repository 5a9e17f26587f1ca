import type { ApprovalAnswer, ApprovalRequest } from "../../approval.ts";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Decision } from "../../decision.ts";

/**
 * The value hopguard interrupts a run with when policies ask a person to approve calls: the `HITLRequest` shape of
 * `humanInTheLoopMiddleware` — one action request and one review config per call, in the order of the model's tool
 * calls — so a UI that handles its interrupts handles these. Resume with
 * `new Command({ resume: { decisions: [{ type: "approve" }, { type: "reject", message: "not that one" }] } })`:
 * one decision per action request, in the same order.
 *
 * @remarks
 * The middleware asks once per model step, for every call of that step that needs a person; `guardTools` asks per
 * call (a tool does not see its siblings). hopguard extends the HITL decision with an optional `approver` string (a
 * user id, an email), recorded on the `hopguard.approval` span: `{ type: "approve", approver: "carol@example.com" }`.
 * Strict where HITL is lenient: a decision approves only its own call, only with type `"approve"` and no
 * `editedAction`; when the number of decisions is not the number of action requests, every call is rejected.
 */
export interface ApprovalInterrupt {
  /** The calls to review, with the arguments that were authorized: the ones that run when approved. */
  actionRequests: { name: string; args: Record<string, unknown>; description: string }[];
  reviewConfigs: { actionName: string; allowedDecisions: ("approve" | "reject")[] }[];
  /** Why the policies asked, for a UI that wants more than the descriptions. */
  hopguard: {
    readonly chain: readonly string[];
    /** One entry per action request, in the same order. */
    readonly calls: readonly ApprovalCall[];
  };
}

/** One call of an {@link ApprovalInterrupt}, as hopguard decided it. */
export interface ApprovalCall {
  /** The model's tool call id, when the call has one. */
  readonly toolCallId: string | undefined;
  readonly server: string;
  readonly tool: string;
  /** The asking rules' distinct reasons, in chain order. */
  readonly reasons: readonly string[];
  /** The hops whose rules asked. */
  readonly requestedBy: readonly string[];
}

/** A call a policy allowed on condition that a person approves it, as the interrupt presents it. */
export interface PendingApproval {
  toolCall: { name: string; args: Record<string, unknown>; id: string | undefined };
  target: ToolTarget;
  decision: Decision;
  approval: ApprovalRequest;
}

/** The interrupt value for calls policies allowed on condition that a person approves them. */
export function approvalInterrupt(pending: readonly PendingApproval[]): ApprovalInterrupt {
  return {
    actionRequests: pending.map(({ toolCall, decision, approval }) => {
      const why = approval.reasons.length === 0 ? "a policy asks for a person's approval" : approval.reasons.join("; ");
      return {
        name: toolCall.name,
        args: toolCall.args,
        description:
          `hopguard: ${why} (asked by ${approval.requestedBy.join(", ")} for ${decision.chain.join(" → ")})\n\n` +
          `Tool: ${toolCall.name}\nArgs: ${JSON.stringify(toolCall.args, null, 2)}`,
      };
    }),
    // No "edit": the PDP allowed these arguments, not whatever a reviewer might type.
    reviewConfigs: pending.map(({ toolCall }) => ({
      actionName: toolCall.name,
      allowedDecisions: ["approve", "reject"],
    })),
    hopguard: {
      chain: pending[0]?.decision.chain ?? [],
      calls: pending.map(({ toolCall, target, approval }) => ({
        toolCallId: toolCall.id,
        server: target.server,
        tool: target.tool,
        reasons: approval.reasons,
        requestedBy: approval.requestedBy,
      })),
    },
  };
}

/**
 * Reads a resume value for an interrupt of `count` calls, each part once: one answer per call, in order. Only a
 * decision `{ type: "approve" }` with no `editedAction` approves its call; an `edit`, `{}`, `null`, `"APPROVE"` or
 * anything else rejects it, and a resume whose `decisions` is not an array of exactly `count` rejects every call, so
 * a malformed or forged answer can never run a call.
 */
export function approvalAnswers(resume: unknown, count: number): ApprovalAnswer[] {
  const decisions = decisionsOf(resume);
  if (decisions === undefined || decisions.length !== count) {
    return Array.from({ length: count }, () => ({ approved: false }));
  }
  return decisions.map(answerOf);
}

/** {@link approvalAnswers} for an interrupt about one call. */
export function approvalAnswer(resume: unknown): ApprovalAnswer {
  return approvalAnswers(resume, 1)[0] as ApprovalAnswer;
}

function answerOf(candidate: unknown): ApprovalAnswer {
  if (!isRecord(candidate)) return { approved: false };
  const { type, approver, message } = candidate;
  const who = typeof approver === "string" && approver !== "" ? { approver } : {};
  // An approval carrying an edit is a reviewer who expects other arguments to run: not an approval of these ones.
  if (type === "approve" && !("editedAction" in candidate)) return { approved: true, ...who };
  return { approved: false, ...who, ...(typeof message === "string" ? { reason: message } : {}) };
}

function decisionsOf(resume: unknown): unknown[] | undefined {
  if (!isRecord(resume)) return undefined;
  const { decisions } = resume;
  return Array.isArray(decisions) ? Array.from(decisions as unknown[]) : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
