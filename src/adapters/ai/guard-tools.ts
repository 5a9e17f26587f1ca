import type { Tracer } from "@opentelemetry/api";
import type { Tool, ToolExecutionOptions, ToolSet } from "ai";
import type { ApprovalAnswer } from "../../approval.ts";
import { type ToolCall, type ToolTarget, type ValidatedToolCall, validateToolCall } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { InvalidInputError, NoDelegationError, ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, resolveDelegation, type ToolCallOutcome } from "../../tool-call-outcome.ts";
import { refuseWithoutChain } from "../../warnings.ts";
import { agentOf } from "./agent-identity.ts";
import { type ApprovalSecret, type ApprovalVerifier, approvalVerifier } from "./approval-signature.ts";
import { markGuarded, remember, reusableOutcome, take } from "./decision-memo.ts";
import { delegationsInToolOptions, placesForTool } from "./delegation-context.ts";
import { findPersonsAnswer, readApprovalHistory } from "./human-approval.ts";
import { type ToolTargetOptions, toolTargetResolver, toToolCall } from "./tool-target.ts";

/** Options for {@link guardTools}. */
export interface GuardToolsOptions extends ToolTargetOptions {
  /**
   * The chain every call acts for. The deepest chain in effect decides: when the tool's `toolsContext` entry or the
   * ambient `runAs` chain was delegated from this one — a sub-agent's run, say — that longer chain is used, so a
   * sub-agent never acts with its orchestrator's rights.
   *
   * @defaultValue the `delegation` in the tool's `toolsContext` entry (AI SDK 6: `experimental_context`), else the
   * chain `hopguardToolApproval` decided this call for (from `runtimeContext`, which the AI SDK does not hand to
   * tools), else the ambient chain set by `runAs`
   */
  delegation?: Delegation | undefined;
  /**
   * What a refused call does. `"refuse"` makes the refusal text the tool's result, for the model to read; `"throw"`
   * throws a {@link ToolCallDeniedError} for a policy's deny (or a missing approval), or the underlying
   * {@link HopguardError} when there is no chain or the PDP cannot answer, which the SDK reports as a `tool-error`.
   *
   * @defaultValue `"refuse"`
   */
  onDenied?: "refuse" | "throw" | undefined;
  /**
   * The secret given to `generateText` / `streamText` / `ToolLoopAgent` as `experimental_toolApprovalSecret`. With
   * it, a person's approval counts only when its `tool-approval-request` carries the SDK's signature over this very
   * call (approval id, tool call id, tool name and input): approvals fabricated in, or edited into, a client-supplied
   * history are refused.
   *
   * @defaultValue none: an approval counts when it answers a person's request for this tool call, in the last
   * message, and the `tool-call` part it approves carries exactly the input about to run
   */
  approvalSecret?: ApprovalSecret | undefined;
  /**
   * The tracer for the `hopguard.authorize` span of a call made without any chain; calls with a chain use the
   * guard's tracer.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

// What needsApproval sees for a call with no chain; execute refuses it for real.
const unrecordedRefusal: ToolCallOutcome = Object.freeze({
  type: "denied",
  decision: undefined,
  error: new NoDelegationError("a guarded tool"),
  reason: "no delegation chain",
});

const onDeniedChoices: ReadonlySet<unknown> = new Set(["refuse", "throw", undefined]);

/**
 * Guards a tool set — your own tools or `@ai-sdk/mcp`'s `client.tools()` — so that each tool runs only after Cerbos
 * allowed the call for every hop of the chain. Everything but `execute` is the original tool's.
 *
 * @remarks
 * **What runs is what was checked.** `execute` reads its input once into a frozen JSON snapshot (`toJSON` applied,
 * getters read once, `__proto__` kept as an own key), asks the PDP about that snapshot, and hands the tool a fresh
 * copy of it — never the object it was given, which its caller may still change. {@link hopguardToolApproval} alone
 * cannot promise this: it answers before the SDK executes, and has no say over what the SDK then hands the tool.
 * That is why guarded tools check again at `execute` — without a second PDP round when the same step's approval
 * (`hopguardToolApproval`, or this tool's `needsApproval`) already decided exactly this input, tool and chain: that
 * decision is used once, within 10 seconds; a changed input, another chain or a call waiting for a person is asked
 * again.
 *
 * **Approvals.** Each guarded tool also gets a `needsApproval` that asks the PDP, so a call whose rule asks for a
 * person stops the run with a `tool-approval-request` when no `toolApproval` is set (a `toolApproval` takes
 * precedence). `execute` runs such a call only when the last message holds a person's answer approving exactly
 * this call — its tool call id, tool name and input — and records the answer as a `hopguard.approval` span
 * (`approved`, or `declined`, also when no valid approval was found). An automatic approval is no person's. Message
 * history comes from the client: set `experimental_toolApprovalSecret` and pass the same secret as `approvalSecret`,
 * so that only approvals the SDK itself requested count. The SDK never calls `execute` for a declined approval; add
 * {@link hopguardApprovalTrail} to the run's telemetry to record those.
 *
 * Guarding stands where `toolApproval` does not: a forgotten or permissive one, a direct `execute` call, AI SDK 6.
 * Tools made by {@link agentTool} are kept as they are: they authorize themselves, by delegating.
 *
 * @example
 * ```ts
 * import { createMCPClient } from "@ai-sdk/mcp";
 * import { generateText } from "ai";
 * import { guardTools } from "hopguard/ai";
 *
 * const secret = process.env.TOOL_APPROVAL_SECRET;
 * const tools = guardTools(await mcpClient.tools(), { server: "filesystem", approvalSecret: secret });
 * const result = await guard.runAs(await alice.delegate(researcher), () =>
 *   generateText({ model, tools, experimental_toolApprovalSecret: secret, prompt: "Tidy up my notes" }),
 * );
 * // a refused call's result reads: hopguard refused filesystem/write_file: denied by agent "researcher" ...
 * ```
 */
export function guardTools<TOOLS extends ToolSet>(tools: TOOLS, options: GuardToolsOptions): TOOLS {
  if (typeof tools !== "object" || tools === null) throw new InvalidInputError("tools", "must be a tool set");
  const resolveTarget = toolTargetResolver(options);
  if (!onDeniedChoices.has(options.onDenied)) {
    throw new InvalidInputError("options.onDenied", 'must be "refuse" or "throw"');
  }
  const { approvalSecret } = options;
  const verify = approvalSecret === undefined ? undefined : approvalVerifier(approvalSecret, "options.approvalSecret");
  // Object.fromEntries defines each key as an own property: a tool named "__proto__" stays a tool.
  return Object.fromEntries(
    (Object.entries(tools) as [string, Tool][]).map(([name, tool]) => [
      name,
      agentOf(tool) === undefined ? guardTool(name, tool, resolveTarget(name), options, verify) : tool,
    ]),
  ) as TOOLS;
}

type Execute = (input: unknown, options: ToolExecutionOptions<unknown>) => unknown;

function guardTool(
  name: string,
  tool: Tool,
  target: ToolTarget,
  options: GuardToolsOptions,
  verify: ApprovalVerifier | undefined,
): Tool {
  const { execute, needsApproval, toModelOutput } = tool as Tool & { execute?: Execute };
  if (typeof execute !== "function") {
    throw new InvalidInputError(
      `tools.${name}`,
      "has no execute function, so it does not run here and cannot be guarded here (hopguardToolApproval sees it)",
    );
  }
  const { delegation: explicit, onDenied = "refuse", tracer } = options;

  const places = placesForTool(name);

  // Reads the input once: the snapshot is what the PDP is asked about and, when allowed, what the tool receives.
  // `atExecute`: this step's approval answer (hopguardToolApproval's, or needsApproval's) is taken, once: its chain is
  // a candidate (tools never see runtimeContext), and its allow stands only for this very chain and snapshot.
  const decide = async (
    input: unknown,
    callOptions: Partial<ToolExecutionOptions<unknown>> | undefined,
    atExecute: boolean,
  ) => {
    const remembered = atExecute ? take(callOptions?.messages, callOptions?.toolCallId) : undefined;
    const delegation = resolveDelegation(explicit, ...delegationsInToolOptions(callOptions), remembered?.delegation);
    const call = toToolCall(target, tool, input, callOptions?.toolCallId);
    const snapshot = snapshotOrUndefined(call);
    // Without a chain, needsApproval leaves the refusal (span, warning) to execute: one refusal per call.
    const outcome: ToolCallOutcome =
      delegation === undefined
        ? atExecute
          ? await refuseWithoutChain(snapshot ?? call, places, tracer)
          : unrecordedRefusal
        : (reusableOutcome(remembered, delegation, snapshot) ??
          (await decideToolCall(delegation, snapshot ?? call, { signal: callOptions?.abortSignal, tracer })));
    if (!atExecute) remember(callOptions?.messages, callOptions?.toolCallId, delegation, outcome);
    return { delegation, outcome, snapshot };
  };

  // The input to run the tool with — a fresh copy of the authorized snapshot — or the refusal to return instead.
  const admit = async (
    input: unknown,
    callOptions: ToolExecutionOptions<unknown>,
  ): Promise<{ input: unknown } | { refusal: string }> => {
    const { delegation, outcome } = await decide(input, callOptions, true);
    if (outcome.type === "denied") {
      return { refusal: refuse(outcome, outcome.reason) };
    }
    if (outcome.type === "approval-required" && delegation !== undefined) {
      const finding = await findPersonsAnswer(readApprovalHistory(callOptions?.messages), {
        toolCallId: outcome.call.toolCallId,
        toolName: name,
        input: outcome.call.arguments,
        verify,
      });
      const answer: ApprovalAnswer = finding.type === "answer" ? finding : { approved: false, reason: finding.why };
      // Approved or not, the answer is recorded: a refused call must not look like one that ran.
      const standing = delegation.recordApproval(outcome.decision, answer);
      if (!standing.allowed) {
        if (onDenied === "throw") throw new ToolCallDeniedError(standing);
        if (finding.type === "answer") return { refusal: refusalText(target, standing.reason) };
        const { reasons } = outcome.approval;
        const why = reasons.length === 0 ? "" : ` (${reasons.join("; ")})`;
        return { refusal: refusalText(target, `a human's approval is required${why} and was not given`) };
      }
    }
    // Never the object we were handed: the caller may still hold it, and change it.
    return { input: structuredClone(outcome.call.arguments) };
  };

  const refuse = (outcome: Extract<ToolCallOutcome, { type: "denied" }>, reason: string): string => {
    if (onDenied === "throw") {
      // No decision means no chain, bad input or no PDP answer: throw what failed.
      throw outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision);
    }
    return refusalText(target, reason);
  };

  const guardedExecute: Execute = isAsyncGeneratorFunction(execute)
    ? async function* (input, callOptions) {
        const admitted = await admit(input, callOptions);
        if ("refusal" in admitted) {
          yield admitted.refusal;
          return;
        }
        yield* execute.call(tool, admitted.input, callOptions) as AsyncIterable<unknown>;
      }
    : async (input, callOptions) => {
        const admitted = await admit(input, callOptions);
        if ("refusal" in admitted) return admitted.refusal;
        // The SDK streams an AsyncIterable only when execute returns one synchronously; past our await, keep its
        // final value rather than hand back the iterable itself.
        return lastValueIfIterable(await execute.call(tool, admitted.input, callOptions));
      };

  const refusalPrefix = refusalText(target, "");
  const guardedTool = {
    ...tool,
    execute: guardedExecute,
    // An explicit `true` already asks for approval every time; otherwise the PDP is asked, then the tool's own rule,
    // about the same snapshot.
    needsApproval:
      needsApproval === true
        ? true
        : async (input: unknown, callOptions: Partial<ToolExecutionOptions<unknown>>) => {
            const { outcome, snapshot } = await decide(input, callOptions, false);
            if (outcome.type === "approval-required") return true;
            if (typeof needsApproval !== "function") return false;
            const call = outcome.type === "allowed" ? outcome.call : snapshot;
            // Unreadable input never runs: execute refuses it.
            if (call === undefined) return false;
            return Boolean(await needsApproval.call(tool, structuredClone(call.arguments), callOptions as never));
          },
    // A tool's own converter expects its own output; hand it everything but our refusal, which the model reads as text.
    ...(typeof toModelOutput === "function"
      ? {
          toModelOutput: (result: Parameters<typeof toModelOutput>[0]) =>
            typeof result?.output === "string" && result.output.startsWith(refusalPrefix)
              ? { type: "text" as const, value: result.output }
              : toModelOutput.call(tool, result),
        }
      : {}),
  } as Tool;
  markGuarded(guardedTool);
  return guardedTool;
}

function snapshotOrUndefined(call: ToolCall): ValidatedToolCall | undefined {
  try {
    return validateToolCall(call);
  } catch {
    // Left to decideToolCall, which refuses it with its span.
    return undefined;
  }
}

function isAsyncGeneratorFunction(fn: unknown): fn is (...args: unknown[]) => AsyncGenerator {
  return Object.prototype.toString.call(fn) === "[object AsyncGeneratorFunction]";
}

async function lastValueIfIterable(result: unknown): Promise<unknown> {
  if (typeof result !== "object" || result === null || !(Symbol.asyncIterator in result)) return result;
  let last: unknown;
  for await (const value of result as AsyncIterable<unknown>) last = value;
  return last;
}
