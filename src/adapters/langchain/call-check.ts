import { ToolMessage } from "@langchain/core/messages";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, type ToolCallOutcome } from "../../tool-call-outcome.ts";
import { approvalAnswer, approvalInterrupt } from "./approval-interrupt.ts";
import type { ToolGuardOptions } from "./options.ts";

/** A tool call as LangChain makes it, with the server and tool it stands for. */
export interface CheckedCall {
  /** The LangChain tool name. */
  name: string;
  args: Record<string, unknown>;
  /** The model's tool call id. */
  id: string | undefined;
  target: ToolTarget;
  annotations: Record<string, unknown> | undefined;
}

/** What the LangGraph run a call happens in offers. */
export interface CallRuntime {
  delegation: Delegation | undefined;
  /** LangGraph's `interrupt`, present inside a graph node; without it a call needing approval cannot pause. */
  interrupt: ((value: unknown) => unknown) | undefined;
  signal: AbortSignal | undefined;
}

/** Whether a call may run, and the text the model reads when it may not. */
export type CallVerdict = { readonly allowed: true } | { readonly allowed: false; readonly refusal: string };

/**
 * Authorizes a call, pausing the run for a person when a policy asks for approval. Resolves to a refusal for the model
 * or, with `onDenied: "throw"`, throws when the PDP denied or could not decide.
 *
 * @remarks
 * A person's answer only matters for a call the PDP allowed: after a resume the node runs again and the call is
 * authorized afresh, so an approval never turns a deny into an allow. A rejection is a refusal, never thrown.
 */
export async function checkCall(
  call: CheckedCall,
  runtime: CallRuntime,
  options: Pick<ToolGuardOptions, "onDenied" | "tracer">,
): Promise<CallVerdict> {
  const outcome = await decideToolCall(
    runtime.delegation,
    {
      server: call.target.server,
      tool: call.target.tool,
      arguments: call.args,
      annotations: call.annotations,
      toolCallId: call.id,
    },
    { signal: runtime.signal, tracer: options.tracer },
  );
  if (outcome.type === "allowed") return { allowed: true };
  if (outcome.type === "denied") {
    if (options.onDenied === "throw") throw deniedError(outcome);
    return { allowed: false, refusal: refusalText(call.target, outcome.reason) };
  }
  if (runtime.interrupt === undefined) {
    return {
      allowed: false,
      refusal: refusalText(call.target, "it needs a person's approval, and this run cannot pause to ask for it"),
    };
  }
  // Not in a try block: the interrupt throws LangGraph's GraphInterrupt to pause the run.
  const answer = approvalAnswer(
    await runtime.interrupt(approvalInterrupt(call, call.target, outcome.decision, outcome.approval)),
  );
  if (answer.approved) return { allowed: true };
  const why = answer.message === undefined ? "" : `: ${answer.message}`;
  return { allowed: false, refusal: refusalText(call.target, `a person did not approve it${why}`) };
}

/** The refusal as the message LangChain agents expect in place of a tool's result. */
export function refusalMessage(call: { name: string; id?: string | undefined }, refusal: string): ToolMessage {
  return new ToolMessage({ content: refusal, tool_call_id: call.id ?? "", name: call.name, status: "error" });
}

/** MCP tool annotations, which `@langchain/mcp-adapters` keeps in the tool's `metadata.annotations`. */
export function annotationsOf(tool: unknown): Record<string, unknown> | undefined {
  const annotations = (tool as { metadata?: { annotations?: unknown } } | undefined)?.metadata?.annotations;
  return typeof annotations === "object" && annotations !== null && !Array.isArray(annotations)
    ? (annotations as Record<string, unknown>)
    : undefined;
}

function deniedError(outcome: Extract<ToolCallOutcome, { type: "denied" }>): Error {
  return outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision);
}
