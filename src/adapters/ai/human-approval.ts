import type { ModelMessage } from "ai";

/**
 * Whether the messages a tool's `execute` receives carry a person's approval of this very call: the last message
 * answers, with `approved: true`, a `tool-approval-request` the SDK raised for `toolCallId`.
 *
 * @remarks
 * The AI SDK runs a call that waited for approval only in the next `generateText` / `streamText`, once the response
 * is the last message, and hands those messages to `execute`: the one trace of the approval `execute` can see.
 * Like the SDK, only the first response to the call counts, and an automatic approval is no person's.
 */
export function approvedByHuman(messages: unknown, toolCallId: unknown): boolean {
  if (!Array.isArray(messages) || typeof toolCallId !== "string") return false;
  const answer = messages.at(-1) as ModelMessage | undefined;
  if (answer?.role !== "tool" || !Array.isArray(answer.content)) return false;

  const asked = new Set<string>();
  for (const message of messages as ModelMessage[]) {
    if (message.role !== "assistant" || !Array.isArray(message.content)) continue;
    for (const part of message.content) {
      if (part.type === "tool-approval-request" && part.toolCallId === toolCallId && part.isAutomatic !== true) {
        asked.add(part.approvalId);
      }
    }
  }
  const response = answer.content.find((part) => part.type === "tool-approval-response" && asked.has(part.approvalId));
  return response?.type === "tool-approval-response" && response.approved === true;
}
