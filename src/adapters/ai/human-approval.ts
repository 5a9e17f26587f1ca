import { toAttributeValue } from "../../attribute-value.ts";
import type { ApprovalVerifier } from "./approval-signature.ts";
import { canonicalJSON } from "./approval-signature.ts";

/**
 * The approval exchange in a conversation, as the AI SDK reads it: `tool-call` parts and `tool-approval-request`
 * parts from assistant messages, and the `tool-approval-response` parts of the last message, which is where the SDK
 * takes answers from. Every field is read once.
 */
export interface ApprovalHistory {
  readonly calls: ReadonlyMap<string, readonly { toolName: unknown; input: unknown }[]>;
  readonly requests: ReadonlyMap<string, readonly { toolCallId: unknown; isAutomatic: unknown; signature: unknown }[]>;
  readonly answers: readonly { approvalId: unknown; approved: unknown; reason: unknown }[];
}

/** The call a person's answer must be about: the snapshot hopguard authorized and is about to run. */
export interface ApprovedCall {
  /** Without one, no answer can be about this call. */
  toolCallId: string | undefined;
  /** The tool-set key: what the model called, and what the SDK signs. */
  toolName: string;
  /** The authorized snapshot's arguments. */
  input: unknown;
  /** Set when approvals must carry the SDK's signature (`approvalSecret`). */
  verify?: ApprovalVerifier | undefined;
}

/** What the messages say about a person's answer to one call. */
export type ApprovalFinding =
  | { readonly type: "answer"; readonly approved: boolean; readonly reason: string | undefined }
  | { readonly type: "none"; readonly why: string };

/**
 * Reads the approval exchange out of the messages a tool callback or telemetry hook received. Messages that cannot be
 * read (a throwing getter, say) hold no approval at all.
 */
export function readApprovalHistory(messages: unknown): ApprovalHistory {
  try {
    return readHistory(messages);
  } catch {
    return { calls: new Map(), requests: new Map(), answers: [] };
  }
}

function readHistory(messages: unknown): ApprovalHistory {
  const calls = new Map<string, { toolName: unknown; input: unknown }[]>();
  const requests = new Map<string, { toolCallId: unknown; isAutomatic: unknown; signature: unknown }[]>();
  const answers: { approvalId: unknown; approved: unknown; reason: unknown }[] = [];
  const list: unknown[] = Array.isArray(messages) ? Array.from(messages) : [];
  for (const [index, message] of list.entries()) {
    const { role, content } = (message ?? {}) as { role?: unknown; content?: unknown };
    if (!Array.isArray(content)) continue;
    const last = index === list.length - 1;
    for (const part of Array.from(content as unknown[])) {
      const fields = (part ?? {}) as Record<string, unknown>;
      const type = fields.type;
      if (role === "assistant" && type === "tool-call") {
        const { toolCallId, toolName, input } = fields;
        if (typeof toolCallId === "string") push(calls, toolCallId, { toolName, input });
      } else if (role === "assistant" && type === "tool-approval-request") {
        const { approvalId, toolCallId, isAutomatic, signature } = fields;
        if (typeof approvalId === "string") push(requests, approvalId, { toolCallId, isAutomatic, signature });
      } else if (last && role === "tool" && type === "tool-approval-response") {
        const { approvalId, approved, reason } = fields;
        answers.push({ approvalId, approved, reason });
      }
    }
  }
  return { calls, requests, answers };
}

/**
 * A person's answer to exactly this call, or why there is none hopguard can trust.
 *
 * @remarks
 * Picks the answer the SDK acts on — the first response in the last message whose request (the last one with its
 * approval id) is for `call.toolCallId` — and then trusts it only if every request with that approval id was a
 * person's (not `isAutomatic`) for this call, every `tool-call` part with this id names this tool with an input whose
 * canonical JSON equals the snapshot about to run, and, with a verifier, the request's signature verifies. Without a
 * signature nothing proves the history came from the SDK: the binding to the input still stops an approval of one
 * call from running another, and a deny is never widened, since the PDP is asked first.
 */
export async function findPersonsAnswer(history: ApprovalHistory, call: ApprovedCall): Promise<ApprovalFinding> {
  const { toolCallId } = call;
  if (toolCallId === undefined) return { type: "none", why: "the call has no toolCallId an approval could name" };
  const answer = history.answers.find(
    (candidate) =>
      typeof candidate.approvalId === "string" &&
      history.requests.get(candidate.approvalId)?.at(-1)?.toolCallId === toolCallId,
  );
  if (answer === undefined) return { type: "none", why: "no approval of this call was given" };
  const approvalId = answer.approvalId as string;
  const requests = history.requests.get(approvalId) ?? [];
  if (requests.some((request) => request.isAutomatic === true)) {
    return { type: "none", why: "the approval was automatic, not a person's" };
  }
  if (requests.some((request) => request.toolCallId !== toolCallId)) {
    return { type: "none", why: `approval "${approvalId}" was requested for another call` };
  }
  const calls = history.calls.get(toolCallId) ?? [];
  if (calls.length === 0) return { type: "none", why: "the approved tool call is not in the messages" };
  const expected = canonicalJSON(call.input);
  if (!calls.every((part) => part.toolName === call.toolName && canonicalSnapshot(part.input) === expected)) {
    return { type: "none", why: "the approved tool call is not this call: its tool or input differs" };
  }
  if (call.verify !== undefined) {
    const signature = requests.at(-1)?.signature;
    const verified = await call
      .verify({
        signature,
        approvalId,
        toolCallId,
        toolName: call.toolName,
        input: call.input,
      })
      .catch(() => false);
    if (!verified) {
      return {
        type: "none",
        why: `the approval request's signature ${signature === undefined ? "is missing" : "does not verify"}`,
      };
    }
  }
  const reason = typeof answer.reason === "string" && answer.reason !== "" ? answer.reason : undefined;
  return { type: "answer", approved: answer.approved === true, reason };
}

// The approved input as hopguard would have snapshot it; unreadable input matches nothing.
function canonicalSnapshot(input: unknown): string | undefined {
  try {
    return canonicalJSON(toAttributeValue(input, "tool-call.input"));
  } catch {
    return undefined;
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
