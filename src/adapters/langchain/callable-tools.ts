import type { ClientTool, ServerTool, StructuredToolInterface } from "@langchain/core/tools";
import type { ToolTarget } from "../../cerbos-request.ts";
import type { Delegation } from "../../delegation.ts";
import { resolveDelegation } from "../../tool-call-outcome.ts";
import type { ToolDescriptor } from "../../tool-listing.ts";
import { noChainError } from "../../warnings.ts";
import { isAgentTool } from "./agent-identity.ts";
import { annotationsOf } from "./call-check.ts";
import { type ToolTargetOptions, toolTarget } from "./tool-target.ts";

/** Options for {@link callableTools}. */
export interface CallableToolsOptions extends ToolTargetOptions {
  /**
   * The chain whose tools to list.
   *
   * @defaultValue the ambient chain set by `runAs`
   */
  delegation?: Delegation | undefined;
  /** Aborts the PDP requests. */
  signal?: AbortSignal | undefined;
}

/**
 * The tools the chain could call, in order — for `createAgent({ tools })` when you guard tools with
 * {@link guardTools} rather than the middleware (which hides tools on its own): tools its scope admits and no hop's
 * policy always denies. {@link agentTool}s are kept: calling one asks every hop whether it may delegate.
 *
 * @remarks
 * The LangChain counterpart of `hopguard/ai`'s `callableToolSet`. Costs O(hops) PDP requests for the tools (see
 * `Delegation.callableTools`). Hiding is advisory: every call is still
 * authorized on its own. A tool whose server cannot be told from its name is left out. Called by your code before a
 * run, it throws rather than guess: {@link NoDelegationError} without a chain, `PdpUnavailableError` when the PDP
 * cannot answer.
 *
 * @example
 * ```ts
 * import { createAgent } from "langchain";
 * import { callableTools, guardTools } from "hopguard/langchain";
 *
 * const delegation = await alice.delegate(researcher);
 * const tools = await callableTools(guardTools(await mcp.getTools(), { server: "filesystem" }), {
 *   server: "filesystem",
 *   delegation,
 * });
 * const agent = createAgent({ model, tools }); // no write_file: researchers do not write
 * ```
 */
export async function callableTools<T extends StructuredToolInterface>(
  tools: readonly T[],
  options: CallableToolsOptions = {},
): Promise<T[]> {
  const delegation = resolveDelegation(options.delegation);
  if (delegation === undefined) throw noChainError("listing the callable tools", ["options.delegation"]);
  return callableFor(delegation, tools, options, options.signal);
}

/** The tools of `tools` that `delegation` could call, in order; throws when the PDP cannot answer. */
export async function callableFor<T extends ClientTool | ServerTool>(
  delegation: Delegation,
  tools: readonly T[],
  options: ToolTargetOptions,
  signal: AbortSignal | undefined,
): Promise<T[]> {
  const described: (ToolDescriptor & { index: number })[] = [];
  const keep = new Set<number>();
  for (const [index, tool] of tools.entries()) {
    if (isAgentTool(tool)) {
      keep.add(index);
      continue;
    }
    const name = (tool as { name?: unknown }).name;
    if (typeof name !== "string") continue;
    let target: ToolTarget;
    try {
      target = toolTarget(name, options);
    } catch {
      continue;
    }
    described.push({ ...target, annotations: annotationsOf(tool), index });
  }
  for (const tool of await delegation.callableTools(described, { signal })) keep.add(tool.index);
  return tools.filter((_, index) => keep.has(index));
}
