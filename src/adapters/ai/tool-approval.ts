import type { Tracer } from "@opentelemetry/api";
import type { Tool, ToolApprovalStatus, ToolSet } from "ai";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { InvalidInputError } from "../../errors.ts";
import { decideToolCall, refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import { refuseWithoutChain } from "../../warnings.ts";
import { agentOf } from "./agent-identity.ts";
import { isGuarded, remember } from "./decision-memo.ts";
import { delegationIn, ownEntry, placesForApproval } from "./delegation-context.ts";
import { type ToolTargetOptions, toolTargetResolver, toToolCall } from "./tool-target.ts";

/** Options for {@link hopguardToolApproval}. */
export interface HopguardToolApprovalOptions extends ToolTargetOptions {
  /**
   * The chain every call acts for. The deepest chain in effect decides: when `runtimeContext`, the tool's
   * `toolsContext` entry or the ambient `runAs` chain was delegated from this one — a sub-agent's run, say — that
   * longer chain is used, so a sub-agent never acts with its orchestrator's rights.
   *
   * @defaultValue the `delegation` in `runtimeContext`, else in the tool's `toolsContext` entry, else the ambient
   * chain set by `runAs`
   */
  delegation?: Delegation | undefined;
  /**
   * Answer an allowed call with `'approved'` (and hopguard's reason), so that the SDK records an automatic approval
   * in the output, instead of `'not-applicable'`.
   *
   * @defaultValue `false`
   */
  recordApprovals?: boolean | undefined;
  /**
   * The tracer for the `hopguard.authorize` span of a call made without any chain; calls with a chain use the
   * guard's tracer.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

/** What the AI SDK hands a generic `toolApproval` function, as far as hopguard reads it. */
export interface ToolApprovalRequestInput {
  toolCall: { toolName: string; toolCallId: string; input: unknown };
  tools?: ToolSet | undefined;
  toolsContext?: unknown;
  runtimeContext?: unknown;
  /** The step's messages: the SDK hands the same array to the call's `execute`. */
  messages?: unknown;
}

/** A generic `toolApproval` function for `generateText`, `streamText` and `ToolLoopAgent`. */
export type HopguardToolApproval = (request: ToolApprovalRequestInput) => Promise<ToolApprovalStatus>;

/**
 * A `toolApproval` function that asks Cerbos about every hop of the chain before each tool call: an allowed call is
 * `'not-applicable'` (or `'approved'`), a denied one `{ type: 'denied', reason }` — the model gets an
 * `execution-denied` result and the loop goes on — and one whose rule asks for a person is `'user-approval'`.
 *
 * @remarks
 * Never throws, since the SDK does not catch what this callback throws: no chain, bad input, a broken `resolveTool`
 * and an unreachable PDP are all denials. The SDK asks again before running a call a person approved, so an approval
 * never outlives a deny. Tools made by {@link agentTool} are `'not-applicable'`: they authorize themselves, by
 * delegating. To leave other tools (say, provider-executed ones) to another policy, call this from your own function.
 *
 * This answers before the SDK executes, about the input it was shown: it cannot bind what the SDK, or anyone holding
 * the tool, later hands `execute`. Wrap the tools with {@link guardTools} as well, which checks again at `execute`
 * and runs exactly what it checked. A declined approval never reaches this callback; {@link hopguardApprovalTrail}
 * records it.
 *
 * With guarded tools, this step hands each call's `execute` (same step, same tool call id) the chain it decided for —
 * so a chain given as `runtimeContext: { delegation }`, which the SDK never shows tools, reaches them — and its
 * decision: `execute` then needs no second PDP round when its input, tool and chain are exactly what was decided
 * (canonical JSON), within 10 seconds, once. Anything else, a person's approval included, is asked again.
 *
 * @example
 * ```ts
 * import { generateText } from "ai";
 * import { hopguardToolApproval } from "hopguard/ai";
 *
 * const result = await generateText({
 *   model,
 *   tools: await mcpClient.tools(),
 *   toolApproval: hopguardToolApproval({ server: "filesystem" }),
 *   runtimeContext: { delegation: await alice.delegate(researcher) },
 *   prompt: "Summarise notes.md",
 * });
 * ```
 */
export function hopguardToolApproval(options: HopguardToolApprovalOptions): HopguardToolApproval {
  const { delegation: explicit, recordApprovals = false, tracer } = options ?? {};
  const resolveTarget = toolTargetResolver(options);
  if (typeof recordApprovals !== "boolean") throw new InvalidInputError("options.recordApprovals", "must be a boolean");

  return async ({ toolCall, tools, toolsContext, runtimeContext, messages }) => {
    let target: ToolTarget | undefined;
    try {
      const toolName = toolCall.toolName;
      const tool = ownEntry(tools, toolName) as Tool | undefined;
      const delegation = resolveDelegation(
        explicit,
        delegationIn(runtimeContext),
        delegationIn(ownEntry(toolsContext, toolName)),
      );
      if (agentOf(tool) !== undefined) {
        // It authorizes itself by delegating, at execute: hand it the chain, which it cannot see in runtimeContext.
        remember(messages, toolCall.toolCallId, delegation, undefined);
        return "not-applicable";
      }
      target = resolveTarget(toolName);
      const call = toToolCall(target, tool, toolCall.input, toolCall.toolCallId);
      const outcome =
        delegation === undefined
          ? await refuseWithoutChain(call, placesForApproval(toolName), tracer)
          : await decideToolCall(delegation, call, { tracer });
      if (isGuarded(tool)) remember(messages, toolCall.toolCallId, delegation, outcome);
      switch (outcome.type) {
        case "allowed":
          return recordApprovals ? { type: "approved", reason: outcome.decision.reason } : "not-applicable";
        case "approval-required": {
          const { reasons } = outcome.approval;
          return { type: "user-approval", reason: reasons.length > 0 ? reasons.join("; ") : outcome.decision.reason };
        }
        case "denied":
          return {
            type: "denied",
            reason: refusalText(target, outcome.reason),
          };
      }
    } catch (error) {
      // Only a broken resolveTool (or a hostile getter) gets here; it must still be a denial, not a crashed run.
      const what = { server: String(target?.server ?? "?"), tool: String(target?.tool ?? toolCall?.toolName) };
      return { type: "denied", reason: refusalText(what, `authorization failed: ${messageOf(error)}`) };
    }
  };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
