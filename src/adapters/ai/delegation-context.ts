import type { Delegation } from "../../delegation.ts";

/**
 * What hopguard reads from the AI SDK's contexts: the chain under the key `delegation`, in `runtimeContext` (read by
 * `hopguardToolApproval`) or in a tool's `toolsContext` entry (read by guarded tools and agent tools; AI SDK 6's
 * `experimental_context` too).
 *
 * @remarks
 * AI SDK 7 hands a tool's `execute` only its own `toolsContext` entry, never `runtimeContext`. A guarded tool still
 * acts for the chain in `runtimeContext` when `hopguardToolApproval` is the run's `toolApproval`: the approval step
 * hands the chain it decided for to that call's `execute`.
 *
 * @example
 * ```ts
 * await generateText({ model, tools, toolApproval: hopguardToolApproval({ server: "filesystem" }), runtimeContext: { delegation } });
 * ```
 */
export interface DelegationContext {
  delegation?: Delegation | undefined;
}

/** A context's `delegation`, unchecked: `resolveDelegation` keeps only a real one. */
export function delegationIn(context: unknown): unknown {
  return typeof context === "object" && context !== null ? (context as DelegationContext).delegation : undefined;
}

/** The chain candidates in the options an AI SDK tool callback receives: AI SDK 7's `context`, then 6's. */
export function delegationsInToolOptions(options: unknown): unknown[] {
  const { context, experimental_context } = (options ?? {}) as { context?: unknown; experimental_context?: unknown };
  return [delegationIn(context), delegationIn(experimental_context)];
}

/** `record[key]` when it is an own property: names from a model or a client never reach a prototype's. */
export function ownEntry(record: unknown, key: string): unknown {
  return typeof record === "object" && record !== null && Object.hasOwn(record, key)
    ? (record as Record<string, unknown>)[key]
    : undefined;
}

/** Where a guarded tool's `execute` (or `needsApproval`) looks for a chain, for the refusal that found none. */
export function placesForTool(toolName: string): string[] {
  return [
    "options.delegation",
    `toolsContext[${JSON.stringify(toolName)}].delegation`,
    "runtimeContext.delegation (tools see it only through hopguardToolApproval)",
  ];
}

/** Where `hopguardToolApproval` looks for a chain, for the refusal that found none. */
export function placesForApproval(toolName: string): string[] {
  return ["options.delegation", "runtimeContext.delegation", `toolsContext[${JSON.stringify(toolName)}].delegation`];
}
