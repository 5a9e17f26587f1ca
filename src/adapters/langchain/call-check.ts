import { ToolMessage } from "@langchain/core/messages";
import { type ToolTarget, type ValidatedToolCall, validateToolCall } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, type ToolCallOutcome } from "../../tool-call-outcome.ts";
import { refuseWithoutChain } from "../../warnings.ts";
import { approvalAnswer, approvalInterrupt } from "./approval-interrupt.ts";
import type { ToolGuardOptions } from "./options.ts";
import type { StepApprovals, StepEntry } from "./step-approvals.ts";

/** A tool call as LangChain makes it, read once, with the server and tool it stands for. */
export interface CheckedCall {
  /** The LangChain tool name. */
  name: string;
  /** The arguments as read from the caller (see {@link toolArguments}); the PDP is asked about their snapshot. */
  args: Record<string, unknown>;
  /** The model's tool call id, as read; anything but a string or `undefined` is refused as invalid input. */
  id: unknown;
  target: ToolTarget;
  annotations: Record<string, unknown> | undefined;
}

/** What the LangGraph run a call happens in offers. */
export interface CallRuntime {
  delegation: Delegation | undefined;
  /** LangGraph's `interrupt`, present inside a graph node; without it a call needing approval cannot pause. */
  interrupt: ((value: unknown) => unknown) | undefined;
  signal: AbortSignal | undefined;
  /** What the middleware's `afterModel` step decided for this model step, when it ran. */
  step?: StepApprovals | undefined;
}

/** Whether a call may run — and then exactly what — and the text the model reads when it may not. */
export type CallVerdict =
  | {
      readonly allowed: true;
      /** The snapshot that was authorized: run {@link authorizedArguments} of it, never the caller's arguments. */
      readonly call: ValidatedToolCall;
    }
  | { readonly allowed: false; readonly refusal: string };

/**
 * Authorizes a call, pausing the run for a person when a policy asks for approval. Resolves to the snapshot to run,
 * to a refusal for the model or, with `onDenied: "throw"`, throws when the PDP denied or could not decide.
 *
 * @remarks
 * The caller's arguments are read once, into the snapshot the PDP is asked about; an allowed verdict carries that
 * snapshot, so nothing that changes the caller's object afterwards changes what runs. A person's answer only matters
 * for a call the PDP allowed: after a resume the node runs again and the call is authorized afresh, so an approval
 * never turns a deny into an allow. The answer is recorded as a `hopguard.approval` span; a rejection is a refusal,
 * never thrown.
 */
export async function checkCall(
  call: CheckedCall,
  runtime: CallRuntime,
  options: Pick<ToolGuardOptions, "onDenied" | "tracer">,
): Promise<CallVerdict> {
  const { delegation } = runtime;
  const toolCall = {
    server: call.target.server,
    tool: call.target.tool,
    arguments: call.args,
    annotations: call.annotations,
    // Validated there: a non-string id is refused, with its span.
    toolCallId: call.id as string | undefined,
  };
  const snapshot = snapshotOrUndefined(toolCall);
  // The step's decision stands only for this chain and exactly this snapshot, and only once.
  const step = runtime.step?.take(call.id, delegation, snapshot);
  const outcome =
    delegation === undefined
      ? await refuseWithoutChain(toolCall, chainPlaces, options.tracer)
      : (reusable(step, snapshot) ??
        (await decideToolCall(delegation, snapshot ?? toolCall, { signal: runtime.signal, tracer: options.tracer })));
  if (outcome.type === "allowed") return { allowed: true, call: outcome.call };
  if (outcome.type === "denied") {
    if (options.onDenied === "throw") throw deniedError(outcome);
    return { allowed: false, refusal: refusalText(call.target, outcome.reason) };
  }
  // A chain decided, so there is one; the check keeps the type system and a refactor honest.
  if (delegation === undefined) {
    return { allowed: false, refusal: refusalText(call.target, "it needs a person's approval") };
  }
  if (step?.answer !== undefined) {
    // Answered in the step's one interrupt, about this very call.
    const standing = delegation.recordApproval(outcome.decision, step.answer);
    return standing.allowed
      ? { allowed: true, call: outcome.call }
      : { allowed: false, refusal: refusalText(call.target, standing.reason) };
  }
  if (runtime.interrupt === undefined) {
    return {
      allowed: false,
      refusal: refusalText(call.target, "it needs a person's approval, and this run cannot pause to ask for it"),
    };
  }
  // Not in a try block: the interrupt throws LangGraph's GraphInterrupt to pause the run.
  const resume = await runtime.interrupt(
    approvalInterrupt([
      {
        toolCall: { name: call.name, args: authorizedArguments(outcome.call), id: outcome.call.toolCallId },
        target: call.target,
        decision: outcome.decision,
        approval: outcome.approval,
      },
    ]),
  );
  const standing = delegation.recordApproval(outcome.decision, approvalAnswer(resume));
  return standing.allowed
    ? { allowed: true, call: outcome.call }
    : { allowed: false, refusal: refusalText(call.target, standing.reason) };
}

/** Where the LangChain adapter looks for a chain, for the refusal that finds none. */
export const chainPlaces: readonly string[] = Object.freeze([
  "options.delegation",
  "the runtime context's delegation (agent.invoke(input, { context: { delegation } }))",
]);

/**
 * What the PDP is asked about for a tool's input: a record as it is; anything else — a string tool's input — as
 * `{ input }`, which is how such tools' schemas name it.
 */
export function toolArguments(input: unknown): Record<string, unknown> {
  return isRecord(input) ? input : { input };
}

/**
 * The authorized arguments in the shape the tool takes, as a fresh copy: the snapshot is frozen and shared, and the
 * tool may keep or change what it is given. `wasRecord` says whether {@link toolArguments} kept the input as it was.
 */
export function authorizedInput(call: ValidatedToolCall, wasRecord: boolean): unknown {
  const args = authorizedArguments(call);
  return wasRecord ? args : args.input;
}

/** A fresh, mutable copy of the arguments that were authorized. */
export function authorizedArguments(call: ValidatedToolCall): Record<string, unknown> {
  return structuredClone(call.arguments) as Record<string, unknown>;
}

/** The refusal as the message LangChain agents expect in place of a tool's result. */
export function refusalMessage(call: { name: string; id?: unknown }, refusal: string): ToolMessage {
  const id = typeof call.id === "string" ? call.id : "";
  return new ToolMessage({ content: refusal, tool_call_id: id, name: call.name, status: "error" });
}

/** MCP tool annotations, which `@langchain/mcp-adapters` keeps in the tool's `metadata.annotations`. */
export function annotationsOf(tool: unknown): Record<string, unknown> | undefined {
  const annotations = (tool as { metadata?: { annotations?: unknown } } | undefined)?.metadata?.annotations;
  return isRecord(annotations) ? annotations : undefined;
}

/** A non-array object: what a tool's arguments are. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The step's outcome, when it can stand for this call: an allow, a policy's deny (a deny only ever refuses), or a
 * call waiting for a person that the step's interrupt has an answer for. A failure without a decision is asked again.
 */
function reusable(step: StepEntry | undefined, snapshot: ValidatedToolCall | undefined): ToolCallOutcome | undefined {
  if (step === undefined || snapshot === undefined) return undefined;
  const { outcome } = step;
  if (outcome.type === "allowed") return { ...outcome, call: snapshot };
  if (outcome.type === "approval-required")
    return step.answer === undefined ? undefined : { ...outcome, call: snapshot };
  return outcome.decision === undefined ? undefined : outcome;
}

function snapshotOrUndefined(call: Parameters<typeof validateToolCall>[0]): ValidatedToolCall | undefined {
  try {
    return validateToolCall(call);
  } catch {
    // Left to decideToolCall, which refuses it with its span.
    return undefined;
  }
}

function deniedError(outcome: Extract<ToolCallOutcome, { type: "denied" }>): Error {
  return outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision);
}
