import type { Tracer } from "@opentelemetry/api";
import { type ToolCall, type ValidatedToolCall, validateToolCall } from "./cerbos-request.ts";
import { NoDelegationError } from "./errors.ts";
import { defaultTracer, recordSpan, SpanNames, toolCallAttributes } from "./telemetry.ts";
import type { ToolCallOutcome } from "./tool-call-outcome.ts";

/** What a hopguard warning is about. */
export type HopguardWarningCode =
  /** A guarded call or listing found no delegation chain anywhere, and was refused. */
  | "no_delegation"
  /** Every hop was denied because no Cerbos policy exists for the resource kind: usually a misspelt `server`. */
  | "no_policy";

/** A misconfiguration hopguard noticed while refusing. The refusal itself happens either way. */
export interface HopguardWarning {
  readonly code: HopguardWarningCode;
  readonly message: string;
}

/** Receives hopguard's warnings; see {@link setWarningHandler}. */
export type WarningHandler = (warning: HopguardWarning) => void;

const maxKeys = 1000;
let handler: WarningHandler = emitProcessWarning;
const given = new Set<string>();

/**
 * Routes hopguard's warnings — a call or listing with no chain anywhere, a resource kind with no Cerbos policy — to
 * `next` instead of `process.emitWarning`. Each warning is given once per process (per resource kind for
 * `no_policy`); setting a handler starts counting afresh. `undefined` restores the default.
 *
 * @remarks
 * A warning never changes a decision: the call is refused either way, and a handler that throws is ignored.
 *
 * @example
 * ```ts
 * import { setWarningHandler } from "hopguard";
 *
 * setWarningHandler((warning) => logger.warn({ code: warning.code }, warning.message));
 * ```
 */
export function setWarningHandler(next: WarningHandler | undefined): void {
  if (next !== undefined && typeof next !== "function") throw new TypeError("the warning handler must be a function");
  handler = next ?? emitProcessWarning;
  given.clear();
}

/** Gives `warning` unless a warning under `key` was already given in this process. */
export function warnOnce(key: string, warning: HopguardWarning): void {
  if (given.has(key) || given.size >= maxKeys) return;
  given.add(key);
  try {
    handler(warning);
  } catch {
    // A logging problem is not an authorization problem.
  }
}

function emitProcessWarning(warning: HopguardWarning): void {
  process.emitWarning(warning.message, { type: "HopguardWarning", code: `HOPGUARD_${warning.code.toUpperCase()}` });
}

/**
 * The refusal for a guarded operation with no chain: a {@link NoDelegationError} that names every place the adapter
 * looked, and (once per process) a `no_delegation` warning.
 */
export function noChainError(what: string, lookedIn: readonly string[]): NoDelegationError {
  const error = new NoDelegationError(what, lookedIn);
  warnOnce("no_delegation", {
    code: "no_delegation",
    message:
      `hopguard refused ${error.message}. Every guarded call without a chain is refused; ` +
      "this warning is given once per process (setWarningHandler routes it elsewhere).",
  });
  return error;
}

/**
 * What an adapter does with a tool call that has no chain: the `hopguard.authorize` span `decideToolCall` would
 * record, with a reason that says where the adapter looked, and the once-per-process warning. Never throws.
 */
export async function refuseWithoutChain(
  call: ToolCall | ValidatedToolCall,
  lookedIn: readonly string[],
  tracer: Tracer | undefined,
): Promise<Extract<ToolCallOutcome, { type: "denied" }>> {
  const snapshot = snapshotOrUndefined(call);
  const names = { server: String(snapshot?.server ?? "?"), tool: String(snapshot?.tool ?? "?") };
  const error = noChainError(`tool ${names.server}/${names.tool}`, lookedIn);
  await recordSpan({
    name: SpanNames.authorize,
    tracer: tracer ?? defaultTracer(),
    attributes: () => toolCallAttributes({ ...names, toolCallId: snapshot?.toolCallId }),
    fn: async () => {
      throw error;
    },
  }).catch(() => undefined);
  return { type: "denied", decision: undefined, error, reason: error.message };
}

/** Whether a PDP's `matchedPolicy` says no policy exists for the resource kind (Cerbos answers `NO_MATCH`). */
export function isNoPolicy(matchedPolicy: string | undefined): boolean {
  return matchedPolicy === "" || matchedPolicy === "NO_MATCH";
}

/** Warns, once per kind, that a resource kind has no Cerbos policy. */
export function warnMissingPolicy(kind: string): void {
  warnOnce(`no_policy:${kind}`, {
    code: "no_policy",
    message:
      `hopguard: no Cerbos policy for resource kind ${kind}, so every call to it is denied and listings show none ` +
      "of its tools. Check the adapter's server name, or add a resource policy for that kind.",
  });
}

function snapshotOrUndefined(call: ToolCall | ValidatedToolCall): ValidatedToolCall | undefined {
  try {
    return validateToolCall(call);
  } catch {
    return undefined;
  }
}
