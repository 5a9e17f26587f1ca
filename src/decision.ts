import type { Value } from "@cerbos/core";
import type { ValidatedToolCall } from "./cerbos-request.ts";

/** Whether a hop is the human at the root of a chain or an agent acting for them. */
export type HopKind = "user" | "agent";

/** The PDP's answer for one hop of a chain. */
export interface HopDecision {
  /** The principal that was checked. */
  readonly principalId: string;
  readonly kind: HopKind;
  /** 0 for the user, 1 for the first agent, and so on. */
  readonly depth: number;
  /** The PDP's effect; anything but `EFFECT_ALLOW` denies. */
  readonly effect: "EFFECT_ALLOW" | "EFFECT_DENY";
  /** The policy that produced the effect, e.g. `resource.mcp_filesystem.vdefault`, or `""` when none matched. */
  readonly policy: string;
  /**
   * The PDP's id for this hop's check, to find it in the Cerbos audit log; `""` when it has none: a hop asked in an
   * AuthZEN batch (find its entry by the decision's `requestId` and the principal id) or answered from memory.
   */
  readonly cerbosCallId: string;
  /** Outputs the hop's matched rules produced. Always empty for an answer from memory (see {@link HopSource}). */
  readonly outputs: readonly DecisionOutput[];
  /** Where the answer came from. */
  readonly source: HopSource;
}

/**
 * Where a hop's answer came from: the PDP itself (`"pdp"`), or the guard's plan cache — a query plan the PDP made
 * for this principal and tool that holds for any arguments (`"plan"`), or its residual condition, evaluated in-process
 * on this call's arguments (`"residual"`). Answers from memory carry no matched policy, no call id and no outputs;
 * the PDP's decision log never sees them (see the plan cache's `decisionLog`).
 */
export type HopSource = "pdp" | "plan" | "residual";

/** A value a Cerbos rule emitted with `output`, tagged with the hop that produced it. */
export interface DecisionOutput {
  readonly principalId: string;
  /** The rule that produced it, e.g. `resource.mcp_filesystem.vdefault#write-in-workspace`. */
  readonly source: string;
  readonly value: Value | undefined;
}

/**
 * What was being decided: a tool call, or a delegation to an agent. A tool call's subject is the frozen snapshot the
 * PDP was asked about — its arguments and annotations included — and is what an adapter sends or executes.
 */
export type DecisionSubject =
  | ({ readonly type: "tool" } & ValidatedToolCall)
  | { readonly type: "delegation"; readonly agentId: string };

/**
 * The outcome of authorizing one tool call or delegation across every hop of a chain.
 *
 * @remarks
 * `allowed` is true only when every hop answered `EFFECT_ALLOW` and the chain's scope admits the call.
 */
export interface Decision {
  readonly allowed: boolean;
  readonly subject: DecisionSubject;
  /** Principal ids from the user to the acting agent. */
  readonly chain: readonly string[];
  /** One entry per hop, in chain order. Empty when the local scope check refused before asking the PDP. */
  readonly hops: readonly HopDecision[];
  /**
   * The first denying hop's principal id, `"scope"` when the delegated scope refused, `"approval"` when a required
   * human approval was not given (see {@link declinedApproval}), `undefined` when allowed.
   */
  readonly deniedBy: string | undefined;
  /** One sentence a person (or a model) can read. */
  readonly reason: string;
  /** Every hop's outputs, in chain order. */
  readonly outputs: readonly DecisionOutput[];
  /** The request id sent to the PDP with every hop's check: the trace id when a span is active. */
  readonly requestId: string;
}
