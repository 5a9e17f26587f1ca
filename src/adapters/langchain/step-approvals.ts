import type { ApprovalAnswer } from "../../approval.ts";
import { toolCallKey, type ValidatedToolCall } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import type { ToolCallOutcome } from "../../tool-call-outcome.ts";

/**
 * What the middleware's `afterModel` step decided about one tool call of the model's last message, for that call's
 * `wrapToolCall`: the outcome (reused only when allowed) and, for a call a policy wants a person to approve, the
 * person's answer from the step's one interrupt.
 */
export interface StepEntry {
  readonly delegation: Delegation;
  /** Canonical JSON of the snapshot decided on: server, tool, arguments and annotations. */
  readonly key: string;
  readonly outcome: ToolCallOutcome;
  readonly answer: ApprovalAnswer | undefined;
  readonly expiresAt: number;
}

const lifetimeMs = 30_000;
const maxEntries = 1024;

/**
 * The step's decisions, by tool call id, for one middleware instance. Each entry is taken once, and counts only for
 * the same chain (by identity) and exactly the same snapshot; anything else is decided afresh at `wrapToolCall`.
 */
export class StepApprovals {
  readonly #entries = new Map<string, StepEntry>();

  remember(toolCallId: string, entry: Omit<StepEntry, "expiresAt">): void {
    this.#entries.delete(toolCallId);
    if (this.#entries.size >= maxEntries) this.#entries.delete(this.#entries.keys().next().value as string);
    const expiresAt = Math.min(Date.now() + lifetimeMs, entry.delegation.scope.expiresAt ?? Number.POSITIVE_INFINITY);
    this.#entries.set(toolCallId, { ...entry, expiresAt });
  }

  /** The entry for this call if it is current and was made for this chain and this snapshot; forgotten either way. */
  take(toolCallId: unknown, delegation: Delegation | undefined, snapshot: ValidatedToolCall | undefined) {
    if (typeof toolCallId !== "string") return undefined;
    const entry = this.#entries.get(toolCallId);
    if (entry === undefined) return undefined;
    this.#entries.delete(toolCallId);
    if (Date.now() >= entry.expiresAt || entry.delegation !== delegation || snapshot === undefined) return undefined;
    return entry.key === toolCallKey(snapshot) ? entry : undefined;
  }
}
