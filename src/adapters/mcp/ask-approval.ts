import type { ApprovalAnswer, ApprovalRequest } from "../../approval.ts";
import { declinedApproval } from "../../approval.ts";
import type { ValidatedToolCall } from "../../cerbos-request.ts";
import type { Decision } from "../../decision.ts";
import type { Delegation } from "../../delegation.ts";

/** What {@link GuardMcpClientOptions.approve} is asked to approve. */
export interface McpApprovalRequest {
  /** The call exactly as hopguard authorized it, and as it will be sent: server, tool, arguments, annotations. */
  readonly call: ValidatedToolCall;
  /** The PDP's decision: allowed, with the outputs that asked for approval. */
  readonly decision: Decision;
  /** Why approval is needed, and which hops' rules asked for it. */
  readonly approval: ApprovalRequest;
}

/** What an approver may answer: only `true` or `{ approved: true }` approves; anything else refuses. */
export type McpApprovalAnswer = boolean | ApprovalAnswer;

/** Asks a person about an allowed call whose policy wants their approval. */
export type McpApprover = (request: McpApprovalRequest) => Promise<McpApprovalAnswer> | McpApprovalAnswer;

/** How an approval ended: approved, or the decision that stands instead and why. */
export type ApprovalVerdict =
  | { readonly approved: true }
  | {
      readonly approved: false;
      /** A deny by `"approval"`, with the PDP's per-hop answers kept. */
      readonly decision: Decision;
      /** For the refusal text a model reads. */
      readonly reason: string;
      /** What the approver threw, if it threw. */
      readonly thrown?: { readonly error: unknown } | undefined;
    };

/**
 * Asks `approve` (if there is one) and records its answer on the chain's audit trail with
 * {@link Delegation.recordApproval}: an approval, a refusal and an approver that throws all leave a
 * `hopguard.approval` span. Only a recorded approval approves: an answer that cannot be recorded refuses the call.
 */
export async function askApproval(
  approve: McpApprover | undefined,
  delegation: Delegation,
  request: McpApprovalRequest,
): Promise<ApprovalVerdict> {
  const { decision, approval } = request;
  const why = approval.reasons.length === 0 ? "" : ` (${approval.reasons.join("; ")})`;
  if (approve === undefined) {
    const reason = `a human's approval is required${why} and no approver is configured`;
    return { approved: false, decision: declinedApproval(decision, reason), reason };
  }
  let answer: ApprovalAnswer;
  let failure: { readonly error: unknown } | undefined;
  try {
    answer = toAnswer(await approve(request));
  } catch (error) {
    failure = { error };
    answer = { approved: false, reason: `asking for approval failed: ${messageOf(error)}` };
  }
  let standing: Decision;
  try {
    standing = delegation.recordApproval(decision, answer);
  } catch (error) {
    // No trace, no run.
    const reason = `a human's approval could not be recorded: ${messageOf(error)}`;
    return { approved: false, decision: declinedApproval(decision, reason), reason, thrown: failure };
  }
  if (answer.approved && standing.allowed) return { approved: true };
  const reason =
    failure === undefined
      ? `a human's approval is required${why} and was not given${answerSuffix(answer)}`
      : (answer.reason ?? "asking for approval failed");
  return { approved: false, decision: standing, reason, thrown: failure };
}

/** Reads an approver's answer once; only a literal `true` (or `approved: true`) approves, not a truthy "no". */
function toAnswer(value: unknown): ApprovalAnswer {
  if (value === true) return { approved: true };
  if (typeof value !== "object" || value === null) return { approved: false };
  const { approved, approver, reason } = value as Record<string, unknown>;
  return {
    approved: approved === true,
    approver: typeof approver === "string" ? approver : undefined,
    reason: typeof reason === "string" ? reason : undefined,
  };
}

function answerSuffix(answer: ApprovalAnswer): string {
  const by = answer.approver === undefined ? "" : ` by ${answer.approver}`;
  return answer.reason === undefined || answer.reason === "" ? by : `${by}: ${answer.reason}`;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
