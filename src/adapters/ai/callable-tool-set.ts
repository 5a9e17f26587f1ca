import type { Tool, ToolSet } from "ai";
import type { Delegation } from "../../delegation.ts";
import { DelegationError, type NoDelegationError } from "../../errors.ts";
import { resolveDelegation } from "../../tool-call-outcome.ts";
import { noChainError } from "../../warnings.ts";
import { agentOf } from "./agent-identity.ts";
import { annotationsOf, type ToolTargetOptions, toolTargetResolver } from "./tool-target.ts";

/** Options for {@link callableToolSet}. */
export interface CallableToolSetOptions extends ToolTargetOptions {
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
 * The part of a tool set the chain could call, for `generateText` / `streamText` / `ToolLoopAgent`: tools its scope
 * admits and no hop's policy always denies, and {@link agentTool}s whose agent every hop may delegate to.
 *
 * @remarks
 * Costs O(hops) PDP requests for the tools (see `Delegation.callableTools`), plus one delegation check per agent
 * tool. Hiding is advisory: guard the tools as well, every call is still authorized on its own. Called by your code
 * before a run, it throws rather than guess: {@link NoDelegationError} without a chain, `PdpUnavailableError` when
 * the PDP cannot answer.
 *
 * @example
 * ```ts
 * import { callableToolSet, guardTools } from "hopguard/ai";
 *
 * const delegation = await alice.delegate(researcher);
 * const tools = await callableToolSet(guardTools(await mcpClient.tools(), { server: "filesystem" }), {
 *   server: "filesystem",
 *   delegation,
 * });
 * // tools has read_text_file, list_directory, ... but no write_file: researchers do not write
 * ```
 */
export async function callableToolSet<TOOLS extends ToolSet>(
  tools: TOOLS,
  options: CallableToolSetOptions,
): Promise<Partial<TOOLS> & ToolSet> {
  const resolveTarget = toolTargetResolver(options);
  const delegation = resolveDelegation(options.delegation);
  if (delegation === undefined) {
    throw noChainError("listing the callable tools of a tool set", ["options.delegation"]);
  }
  const { signal } = options;

  const entries = Object.entries(tools) as [string, Tool][];
  const descriptors = entries.flatMap(([name, tool]) =>
    agentOf(tool) === undefined ? [{ ...resolveTarget(name), annotations: annotationsOf(tool), name }] : [],
  );
  const [callable, delegable] = await Promise.all([
    delegation.callableTools(descriptors, { signal }),
    Promise.all(entries.map(([name, tool]) => mayDelegate(delegation, agentOf(tool), signal).then((ok) => ok && name))),
  ]);
  const keep = new Set<string | false>([...callable.map((descriptor) => descriptor.name), ...delegable]);
  return Object.fromEntries(entries.filter(([name]) => keep.has(name))) as Partial<TOOLS> & ToolSet;
}

async function mayDelegate(
  delegation: Delegation,
  agent: ReturnType<typeof agentOf>,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (agent === undefined) return false;
  try {
    // A dry run of what the tool does when called; the child chain is dropped.
    await delegation.delegate(agent, { signal });
    return true;
  } catch (error) {
    if (DelegationError.isInstance(error)) return false;
    throw error;
  }
}
