import type { Tracer } from "@opentelemetry/api";
import type { Tool, ToolExecutionOptions, ToolSet } from "ai";
import { declinedApproval } from "../../approval.ts";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { InvalidInputError, ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, resolveDelegation, type ToolCallOutcome } from "../../tool-call-outcome.ts";
import { agentOf } from "./agent-identity.ts";
import { delegationsInToolOptions } from "./delegation-context.ts";
import { approvedByHuman } from "./human-approval.ts";
import { type ToolTargetOptions, toolTargetResolver, toToolCall } from "./tool-target.ts";

/** Options for {@link guardTools}. */
export interface GuardToolsOptions extends ToolTargetOptions {
  /**
   * The chain every call acts for.
   *
   * @defaultValue the `delegation` in the tool's `toolsContext` entry (AI SDK 6: `experimental_context`), else the
   * ambient chain set by `runAs`. The AI SDK does not hand `runtimeContext` to tools.
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
   * The tracer for the `hopguard.authorize` span of a call made without any chain; calls with a chain use the
   * guard's tracer.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

const onDeniedChoices: ReadonlySet<unknown> = new Set(["refuse", "throw", undefined]);

/**
 * Guards a tool set — your own tools or `@ai-sdk/mcp`'s `client.tools()` — so that each tool runs only after Cerbos
 * allowed the call for every hop of the chain. Everything but `execute` is the original tool's.
 *
 * @remarks
 * Each guarded tool also gets a `needsApproval` that asks the PDP, so a call whose rule asks for a person stops the
 * run with a `tool-approval-request` when no `toolApproval` is set (a `toolApproval` takes precedence over it).
 * `execute` authorizes again either way, and runs such a call only when the messages it receives hold a person's
 * approval of it. That costs one more PDP round per call than {@link hopguardToolApproval} alone, and stands where
 * `toolApproval` does not: a forgotten or permissive one, a direct `execute` call, AI SDK 6. Tools made by
 * {@link agentTool} are kept as they are: they authorize themselves, by delegating.
 *
 * @example
 * ```ts
 * import { createMCPClient } from "@ai-sdk/mcp";
 * import { generateText } from "ai";
 * import { guardTools } from "hopguard/ai";
 *
 * const tools = guardTools(await mcpClient.tools(), { server: "filesystem" });
 * const result = await guard.runAs(await alice.delegate(researcher), () =>
 *   generateText({ model, tools, prompt: "Tidy up my notes" }),
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
  return Object.fromEntries(
    (Object.entries(tools) as [string, Tool][]).map(([name, tool]) => [
      name,
      agentOf(tool) === undefined ? guardTool(name, tool, resolveTarget(name), options) : tool,
    ]),
  ) as TOOLS;
}

type Execute = (input: unknown, options: ToolExecutionOptions<unknown>) => unknown;

function guardTool(name: string, tool: Tool, target: ToolTarget, options: GuardToolsOptions): Tool {
  const { execute, needsApproval, toModelOutput } = tool as Tool & { execute?: Execute };
  if (typeof execute !== "function") {
    throw new InvalidInputError(
      `tools.${name}`,
      "has no execute function, so it does not run here and cannot be guarded here (hopguardToolApproval sees it)",
    );
  }
  const { delegation: explicit, onDenied = "refuse", tracer } = options;

  const decide = (input: unknown, callOptions: Partial<ToolExecutionOptions<unknown>> | undefined) =>
    decideToolCall(
      resolveDelegation(explicit, ...delegationsInToolOptions(callOptions)),
      toToolCall(target, tool, input, callOptions?.toolCallId),
      { signal: callOptions?.abortSignal, tracer },
    );

  // Resolves to undefined when the call may run, else to the refusal to return in its place.
  const admit = async (input: unknown, callOptions: ToolExecutionOptions<unknown>): Promise<string | undefined> => {
    const outcome = await decide(input, callOptions);
    if (outcome.type === "allowed") return undefined;
    if (outcome.type === "approval-required") {
      if (approvedByHuman(callOptions?.messages, callOptions?.toolCallId)) return undefined;
      const why = outcome.approval.reasons.length === 0 ? "" : ` (${outcome.approval.reasons.join("; ")})`;
      return refuse(outcome, `a human's approval is required${why} and was not given`);
    }
    return refuse(outcome, outcome.reason);
  };

  const refuse = (outcome: ToolCallOutcome, reason: string): string => {
    if (onDenied === "throw") {
      if (outcome.type === "denied") {
        // No decision means no chain, bad input or no PDP answer: throw what failed.
        throw outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision);
      }
      // A missing approval is a deny the PDP could not know about; named the way scope refusals are.
      throw new ToolCallDeniedError(declinedApproval(outcome.decision, reason));
    }
    return refusalText(target, reason);
  };

  const guardedExecute: Execute = isAsyncGeneratorFunction(execute)
    ? async function* (input, callOptions) {
        const refusal = await admit(input, callOptions);
        if (refusal !== undefined) {
          yield refusal;
          return;
        }
        yield* execute.call(tool, input, callOptions) as AsyncIterable<unknown>;
      }
    : async (input, callOptions) => {
        const refusal = await admit(input, callOptions);
        if (refusal !== undefined) return refusal;
        // The SDK streams an AsyncIterable only when execute returns one synchronously; past our await, keep its
        // final value rather than hand back the iterable itself.
        return lastValueIfIterable(await execute.call(tool, input, callOptions));
      };

  const refusalPrefix = refusalText(target, "");
  return {
    ...tool,
    execute: guardedExecute,
    // An explicit `true` already asks for approval every time; anything else is asked first, then the PDP.
    needsApproval:
      needsApproval === true
        ? true
        : async (input: unknown, callOptions: Partial<ToolExecutionOptions<unknown>>) => {
            if (typeof needsApproval === "function" && (await needsApproval.call(tool, input, callOptions as never))) {
              return true;
            }
            return (await decide(input, callOptions)).type === "approval-required";
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
