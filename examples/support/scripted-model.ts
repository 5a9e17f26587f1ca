import { MockLanguageModelV4 } from "ai/test";

/** One response of a scripted model: tool calls (the SDK runs them and asks again) or the final text. */
export type Turn = { calls: { id: string; tool: string; input: Record<string, unknown> }[] } | { text: string };

/**
 * A real AI SDK language model (the SDK's own mock) that plays a script, so the demo runs offline and the same way
 * every time. The guard is what the demo shows, not the model.
 */
export function scriptedModel(...turns: Turn[]): MockLanguageModelV4 {
  let next = 0;
  return new MockLanguageModelV4({
    doGenerate: async () => {
      const turn = turns[next++] ?? { text: "(the script is over)" };
      const usage = {
        inputTokens: { total: 1, noCache: 1, cacheRead: undefined, cacheWrite: undefined },
        outputTokens: { total: 1, text: 1, reasoning: undefined },
      };
      if ("text" in turn) {
        return {
          content: [{ type: "text", text: turn.text }],
          finishReason: { unified: "stop", raw: undefined },
          usage,
          warnings: [],
        };
      }
      return {
        content: turn.calls.map((call) => ({
          type: "tool-call" as const,
          toolCallId: call.id,
          toolName: call.tool,
          input: JSON.stringify(call.input),
        })),
        finishReason: { unified: "tool-calls", raw: undefined },
        usage,
        warnings: [],
      };
    },
  });
}
