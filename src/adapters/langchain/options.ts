import type { Tracer } from "@opentelemetry/api";
import type { Delegation } from "../../delegation.ts";
import type { ToolTargetOptions } from "./tool-target.ts";

/**
 * What hopguard reads from the LangChain runtime context: pass `{ context: { delegation } }` to `agent.invoke`, and
 * both {@link hopguardMiddleware} and tools from {@link guardTools} act for that chain.
 */
export interface HopguardContext {
  delegation?: Delegation | undefined;
}

/** Options shared by {@link guardTools} and {@link hopguardMiddleware}. */
export interface ToolGuardOptions extends ToolTargetOptions {
  /**
   * The chain every call acts for.
   *
   * @defaultValue the runtime context's `delegation` ({@link HopguardContext}), else the one set by `runAs`
   */
  delegation?: Delegation | undefined;
  /**
   * What a denied call does: `"refuse"` answers the model with an error `ToolMessage` saying why, so it can adapt;
   * `"throw"` throws {@link ToolCallDeniedError} (or the {@link HopguardError} that stopped the check) to end the
   * run.
   * A person's rejection, or an approval that cannot be asked for, is always a refusal.
   *
   * @defaultValue `"refuse"`
   */
  onDenied?: "refuse" | "throw" | undefined;
  /**
   * The tracer for the span of a call refused because it had no chain; a chain's own calls use its guard's tracer.
   *
   * @defaultValue `trace.getTracer("hopguard", version)`
   */
  tracer?: Tracer | undefined;
}

/** The `delegation` a runtime context carries, if it is an object that has one. */
export function contextDelegation(context: unknown): unknown {
  return typeof context === "object" && context !== null ? (context as HopguardContext).delegation : undefined;
}
