import type { Tracer } from "@opentelemetry/api";
import type { Tool } from "ai";
import type { Delegation } from "../../delegation.ts";
import { decideToolCall, resolveDelegation } from "../../tool-call-outcome.ts";
import { agentOf } from "./agent-identity.ts";
import { type ApprovalSecret, approvalVerifier } from "./approval-signature.ts";
import { delegationIn, ownEntry } from "./delegation-context.ts";
import { type ApprovalHistory, findPersonsAnswer, readApprovalHistory } from "./human-approval.ts";
import { type ToolTargetOptions, toolTargetResolver, toToolCall } from "./tool-target.ts";

/** Options for {@link hopguardApprovalTrail}. */
export interface HopguardApprovalTrailOptions extends ToolTargetOptions {
  /**
   * The chain the declined calls were for. The deepest chain in effect decides, as for {@link guardTools}.
   *
   * @defaultValue the ambient chain set by `runAs`, else the `delegation` in `runtimeContext` or the tool's
   * `toolsContext` entry — which the SDK hands telemetry only when `telemetry.includeRuntimeContext` /
   * `includeToolsContext` includes `delegation`
   */
  delegation?: Delegation | undefined;
  /**
   * The run's `experimental_toolApprovalSecret`: with it, only declines of requests the SDK signed are recorded.
   *
   * @defaultValue none
   */
  approvalSecret?: ApprovalSecret | undefined;
  /**
   * The tracer for the `hopguard.authorize` span of a call made without any chain.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

/** An AI SDK telemetry integration; only `onStart` is used. */
export interface HopguardApprovalTrail {
  /** Records the declined approvals the run starts with. Never throws. */
  onStart(event: unknown): Promise<void>;
}

/**
 * An AI SDK 7 telemetry integration that records each approval a person declined as a `hopguard.approval` span
 * (`declined`, with the person's reason), the way `guardTools` records the approvals it runs.
 *
 * @remarks
 * The SDK never hands a declined approval to a tool: it turns it into an `execution-denied` result before the first
 * step, so `execute`, `needsApproval` and `toolApproval` never see it. What does see it is the run's start: the
 * `onStart` event carries the messages, whose last one holds the answers. For each answer declining a person's
 * request, the call is authorized again (the span needs the decision the person declined: one PDP round per
 * declined call) and the decline is recorded when the PDP allowed it; a call the PDP denies keeps its deny. Declines
 * hopguard cannot tie to a call — an automatic one, one whose tool call is not in the history, or, with
 * `approvalSecret`, one whose request the SDK did not sign — are not recorded.
 *
 * @example
 * ```ts
 * import { generateText } from "ai";
 * import { guardTools, hopguardApprovalTrail } from "hopguard/ai";
 *
 * await guard.runAs(delegation, () =>
 *   generateText({
 *     model,
 *     tools: guardTools(tools, { server: "filesystem" }),
 *     messages, // ending with { role: "tool", content: [{ type: "tool-approval-response", approved: false, ... }] }
 *     telemetry: { integrations: [hopguardApprovalTrail({ server: "filesystem" })] },
 *   }),
 * );
 * ```
 */
export function hopguardApprovalTrail(options: HopguardApprovalTrailOptions): HopguardApprovalTrail {
  const resolveTarget = toolTargetResolver(options);
  const { delegation: explicit, approvalSecret, tracer } = options;
  const verify = approvalSecret === undefined ? undefined : approvalVerifier(approvalSecret, "options.approvalSecret");

  const record = async (history: ApprovalHistory, approvalId: string, event: StartEvent): Promise<void> => {
    const toolCallId = history.requests.get(approvalId)?.at(-1)?.toolCallId;
    if (typeof toolCallId !== "string") return;
    const call = history.calls.get(toolCallId)?.at(-1);
    const toolName = call?.toolName;
    if (typeof toolName !== "string") return;
    const tool = ownEntry(event.tools, toolName) as Tool | undefined;
    if (agentOf(tool) !== undefined) return;
    const delegation = resolveDelegation(
      explicit,
      delegationIn(event.runtimeContext),
      delegationIn(ownEntry(event.toolsContext, toolName)),
    );
    const outcome = await decideToolCall(
      delegation,
      toToolCall(resolveTarget(toolName), tool, call?.input, toolCallId),
      { tracer },
    );
    if (outcome.type === "denied" || delegation === undefined) return;
    const finding = await findPersonsAnswer(history, {
      toolCallId,
      toolName,
      input: outcome.call.arguments,
      verify,
    });
    if (finding.type === "answer" && !finding.approved) delegation.recordApproval(outcome.decision, finding);
  };

  return {
    onStart: async (event) => {
      try {
        const start = (event ?? {}) as StartEvent;
        const history = readApprovalHistory(start.messages);
        const declined = history.answers.flatMap(({ approvalId, approved }) =>
          approved !== true && typeof approvalId === "string" ? [approvalId] : [],
        );
        // One unreadable entry (a broken resolveTool, say) must not cost the others their record.
        await Promise.all(
          [...new Set(declined)].map((approvalId) => record(history, approvalId, start).catch(() => undefined)),
        );
      } catch {
        // A trail that fails must not fail the run: nothing runs for a declined call either way.
      }
    },
  };
}

interface StartEvent {
  messages?: unknown;
  tools?: unknown;
  runtimeContext?: unknown;
  toolsContext?: unknown;
}
