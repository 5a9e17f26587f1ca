import { toolCallKey, type ValidatedToolCall } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import type { ToolCallOutcome } from "../../tool-call-outcome.ts";

/**
 * What the approval step (`hopguardToolApproval`, or a guarded tool's `needsApproval`) learnt about one tool call,
 * for that call's `execute` in the same step.
 */
interface Remembered {
  /** The chain the approval step acted for: the `execute` side cannot see `runtimeContext`. */
  readonly delegation: Delegation;
  /**
   * An allow, or a policy's deny, and the canonical JSON of what it was about; never an approval-required outcome (a
   * person's answer is read at execute) nor a failure without a decision (asked again).
   */
  readonly decided: { readonly outcome: ReusableOutcome; readonly key: string } | undefined;
  readonly expiresAt: number;
}

type AllowedOutcome = Extract<ToolCallOutcome, { type: "allowed" }>;
type DeniedOutcome = Extract<ToolCallOutcome, { type: "denied" }>;
type ReusableOutcome = AllowedOutcome | (DeniedOutcome & { decision: NonNullable<DeniedOutcome["decision"]> });

/** How long an approval step's answer may serve its `execute`; past it, `execute` asks the PDP again. */
const lifetimeMs = 10_000;
const maxCallsPerStep = 256;

// Keyed by the step's `messages` array, the one object the SDK hands both the approval step and `execute` of the same
// step (`generateText`, `streamText`, and the resume of approved calls): another run, or another step, never finds
// this step's entries, and they go with the array.
const steps = new WeakMap<object, Map<string, Remembered>>();

// Tools guardTools made: only their calls are remembered, since only their execute consumes the memo.
const guarded = new WeakSet<object>();

/** Marks `tool` as a guarded tool, whose `execute` reads the memo. */
export function markGuarded(tool: object): void {
  guarded.add(tool);
}

/** Whether `tool` was made by `guardTools`. */
export function isGuarded(tool: unknown): boolean {
  return typeof tool === "object" && tool !== null && guarded.has(tool);
}

/**
 * Remembers what the approval step decided for `toolCallId` in the step whose messages are `messages`. An allow or a
 * policy's deny is kept as a decision; any outcome keeps the chain it was decided for.
 */
export function remember(
  messages: unknown,
  toolCallId: unknown,
  delegation: Delegation | undefined,
  outcome: ToolCallOutcome | undefined,
): void {
  if (typeof messages !== "object" || messages === null || typeof toolCallId !== "string" || delegation === undefined) {
    return;
  }
  let step = steps.get(messages);
  if (step === undefined) {
    step = new Map();
    steps.set(messages, step);
  }
  step.delete(toolCallId);
  if (step.size >= maxCallsPerStep) step.delete(step.keys().next().value as string);
  const expiresAt = Math.min(Date.now() + lifetimeMs, delegation.scope.expiresAt ?? Number.POSITIVE_INFINITY);
  step.set(toolCallId, { delegation, decided: reusable(outcome), expiresAt });
}

/** Takes (and forgets) what the approval step decided for this call; `undefined` when nothing current is known. */
export function take(messages: unknown, toolCallId: unknown): Remembered | undefined {
  if (typeof messages !== "object" || messages === null || typeof toolCallId !== "string") return undefined;
  const step = steps.get(messages);
  const entry = step?.get(toolCallId);
  if (entry === undefined) return undefined;
  step?.delete(toolCallId);
  return Date.now() < entry.expiresAt ? entry : undefined;
}

/**
 * The remembered outcome, if it was decided for exactly this chain and exactly this snapshot — else `undefined`, and
 * the caller asks the PDP.
 */
export function reusableOutcome(
  entry: Remembered | undefined,
  delegation: Delegation | undefined,
  snapshot: ValidatedToolCall | undefined,
): ToolCallOutcome | undefined {
  if (entry?.decided === undefined || snapshot === undefined || entry.delegation !== delegation) return undefined;
  if (entry.decided.key !== toolCallKey(snapshot)) return undefined;
  const { outcome } = entry.decided;
  // An allowed tool runs with this step's own snapshot, which is the allowed one by canonical JSON.
  return outcome.type === "allowed" ? { ...outcome, call: snapshot } : outcome;
}

function reusable(outcome: ToolCallOutcome | undefined): Remembered["decided"] {
  if (outcome?.type === "allowed") return { outcome, key: toolCallKey(outcome.call) };
  if (outcome?.type !== "denied" || outcome.decision === undefined) return undefined;
  const { subject } = outcome.decision;
  if (subject.type !== "tool") return undefined;
  return { outcome: outcome as ReusableOutcome, key: toolCallKey(subject) };
}
