import type { ApprovalRequest } from "../../approval.ts";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Decision } from "../../decision.ts";

/**
 * The value hopguard interrupts a run with when a policy asks a person to approve a call: the `HITLRequest` shape of
 * `humanInTheLoopMiddleware`, with one action, so a UI that handles its interrupts handles these. Resume with
 * `new Command({ resume: { decisions: [{ type: "approve" }] } })`, or `{ type: "reject", message? }`.
 */
export interface ApprovalInterrupt {
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

/** A person's answer to an {@link ApprovalInterrupt}. */
export type ApprovalAnswer = { approved: true } | { approved: false; message: string | undefined };

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

/** Reads a resume value; only an explicit `approve` approves, anything else (or nothing) rejects. */
export function approvalAnswer(resume: unknown): ApprovalAnswer {
  const decisions = (resume as { decisions?: unknown } | null | undefined)?.decisions;
  const first: unknown = Array.isArray(decisions) && decisions.length === 1 ? decisions[0] : undefined;
  if (typeof first !== "object" || first === null) return { approved: false, message: undefined };
  const { type, message } = first as { type?: unknown; message?: unknown };
  if (type === "approve") return { approved: true };
  return { approved: false, message: typeof message === "string" ? message : undefined };
}
