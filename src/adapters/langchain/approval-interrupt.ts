import type { ApprovalAnswer, ApprovalRequest } from "../../approval.ts";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Decision } from "../../decision.ts";

/**
 * The value hopguard interrupts a run with when a policy asks a person to approve a call: the `HITLRequest` shape of
 * `humanInTheLoopMiddleware`, with one action, so a UI that handles its interrupts handles these. Resume with
 * `new Command({ resume: { decisions: [{ type: "approve" }] } })`, or `{ type: "reject", message? }`.
 *
 * @remarks
 * hopguard extends the HITL decision with an optional `approver` string (a user id, an email), recorded on the
 * `hopguard.approval` span: `{ decisions: [{ type: "approve", approver: "carol@example.com" }] }`. Only a resume
 * with exactly one decision of type `"approve"` (and no `editedAction`) approves; anything else is a rejection.
 */
export interface ApprovalInterrupt {
  /** The one call to review, with the arguments that were authorized: the ones that run when approved. */
  actionRequests: { name: string; args: Record<string, unknown>; description: string }[];
  reviewConfigs: { actionName: string; allowedDecisions: ("approve" | "reject")[] }[];
  /** Why the policy asked, for a UI that wants more than the description. */
  hopguard: {
    readonly server: string;
    readonly tool: string;
    readonly chain: readonly string[];
    /** The asking rules' distinct reasons, in chain order. */
    readonly reasons: readonly string[];
    /** The hops whose rules asked. */
    readonly requestedBy: readonly string[];
  };
}

/** The interrupt value for a call a policy allowed on condition that a person approves it. */
export function approvalInterrupt(
  toolCall: { name: string; args: Record<string, unknown> },
  target: ToolTarget,
  decision: Decision,
  approval: ApprovalRequest,
): ApprovalInterrupt {
  const why = approval.reasons.length === 0 ? "a policy asks for a person's approval" : approval.reasons.join("; ");
  return {
    actionRequests: [
      {
        name: toolCall.name,
        args: toolCall.args,
        description:
          `hopguard: ${why} (asked by ${approval.requestedBy.join(", ")} for ${decision.chain.join(" → ")})\n\n` +
          `Tool: ${toolCall.name}\nArgs: ${JSON.stringify(toolCall.args, null, 2)}`,
      },
    ],
    // No "edit": the PDP allowed these arguments, not whatever a reviewer might type.
    reviewConfigs: [{ actionName: toolCall.name, allowedDecisions: ["approve", "reject"] }],
    hopguard: {
      server: target.server,
      tool: target.tool,
      chain: decision.chain,
      reasons: approval.reasons,
      requestedBy: approval.requestedBy,
    },
  };
}

/**
 * Reads a resume value, each part once. Only `{ decisions: [{ type: "approve" }] }` — exactly one decision, of type
 * `"approve"`, with no `editedAction` — approves; an `edit`, several decisions, `{}`, `null`, `"APPROVE"` or anything
 * else is a rejection, so a malformed or forged answer can never run a call.
 */
export function approvalAnswer(resume: unknown): ApprovalAnswer {
  const decision = onlyDecision(resume);
  if (decision === undefined) return { approved: false };
  const { type, approver, message } = decision;
  const who = typeof approver === "string" && approver !== "" ? { approver } : {};
  // An approval carrying an edit is a reviewer who expects other arguments to run: not an approval of these ones.
  if (type === "approve" && !("editedAction" in decision)) return { approved: true, ...who };
  return { approved: false, ...who, ...(typeof message === "string" ? { reason: message } : {}) };
}

function onlyDecision(resume: unknown): Record<string, unknown> | undefined {
  if (!isRecord(resume)) return undefined;
  const { decisions } = resume;
  if (!Array.isArray(decisions) || decisions.length !== 1) return undefined;
  const decision: unknown = decisions[0];
  return isRecord(decision) ? decision : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
