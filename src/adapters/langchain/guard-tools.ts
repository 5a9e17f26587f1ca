import type { CallbackManagerForToolRun } from "@langchain/core/callbacks/manager";
import type { ToolCall } from "@langchain/core/messages";
import {
  StructuredTool,
  type StructuredToolCallInput,
  type StructuredToolInterface,
  type ToolReturnType,
  type ToolRunnableConfig,
  type ToolSchemaBase,
} from "@langchain/core/tools";
import type { ToolTarget } from "../../cerbos-request.ts";
import { resolveDelegation } from "../../tool-call-outcome.ts";
import { isAgentTool } from "./agent-identity.ts";
import { annotationsOf, type CheckedCall, checkCall, refusalMessage } from "./call-check.ts";
import { contextDelegation, type ToolGuardOptions } from "./options.ts";
import { toolTarget } from "./tool-target.ts";

/** What a tool returns, as `StructuredTool` types it by default (`any`, since the tool decides). */
type ToolOutput =
  StructuredTool extends StructuredTool<infer _Schema, infer _Parsed, infer _Input, infer Output> ? Output : never;

/** Options for {@link guardTools}. */
export interface GuardToolsOptions extends ToolGuardOptions {}

/**
 * Wraps LangChain tools so that every call is authorized, for every hop of the acting chain, before it runs.
 *
 * @remarks
 * The returned tools keep everything the model and the agent see — name, description, schema, `responseFormat`,
 * `returnDirect`, metadata — and only execution changes. A denied call does not run: called with a tool call (as
 * agents do), the tool answers with an error `ToolMessage` carrying the refusal; called with bare arguments, with the
 * refusal text. When a policy asks for approval, the call pauses the LangGraph run with an {@link ApprovalInterrupt}
 * (a checkpointer is needed to resume); outside a graph node it is refused.
 *
 * Arguments are authorized as the model sent them, before the tool's schema parses them: avoid schemas whose
 * defaults or transforms would change what a policy looks at. Throws {@link InvalidInputError} when a tool's server
 * cannot be told from its name (see {@link ToolGuardOptions.server}). Guard a tool with this or with
 * {@link hopguardMiddleware}, not both: each would authorize, and ask for approval, on its own. `createAgent`'s tool
 * node turns an error a tool throws into an error `ToolMessage`, so there `onDenied: "throw"` ends the run only
 * through the middleware.
 *
 * @example
 * ```ts
 * import { MultiServerMCPClient } from "@langchain/mcp-adapters";
 * import { createAgent } from "langchain";
 * import { guardTools } from "hopguard/langchain";
 *
 * const filesystem = { transport: "stdio", command: "npx", args: ["@modelcontextprotocol/server-filesystem", dir] };
 * const mcp = new MultiServerMCPClient({
 *   mcpServers: { filesystem },
 *   prefixToolNameWithServerName: true,
 * });
 * const agent = createAgent({ model, tools: guardTools(await mcp.getTools()) });
 * await agent.invoke({ messages: [{ role: "user", content: "Summarize notes.md" }] }, { context: { delegation } });
 * ```
 */
export function guardTools(
  tools: readonly StructuredToolInterface[],
  options: GuardToolsOptions = {},
): StructuredTool[] {
  return tools.map((tool) =>
    // An agentTool authorizes itself, by delegating; guarding it as an MCP tool would refuse it.
    isAgentTool(tool) ? (tool as StructuredTool) : new GuardedTool(tool, toolTarget(tool.name, options), options),
  );
}

/** A tool that asks hopguard before handing a call to the tool it wraps. */
class GuardedTool extends StructuredTool {
  name: string;
  description: string;
  schema: ToolSchemaBase;
  readonly #tool: StructuredToolInterface;
  readonly #target: ToolTarget;
  readonly #options: GuardToolsOptions;

  constructor(tool: StructuredToolInterface, target: ToolTarget, options: GuardToolsOptions) {
    // Optional fields of StructuredTool that the interface does not promise; copied when the tool has them.
    const extra = tool as Partial<StructuredTool>;
    super(
      defined({
        responseFormat: extra.responseFormat,
        verboseParsingErrors: extra.verboseParsingErrors,
        metadata: extra.metadata,
        extras: tool.extras,
        tags: extra.tags,
        callbacks: extra.callbacks,
        verbose: extra.verbose,
        defaultConfig: extra.defaultConfig,
      }),
    );
    this.name = tool.name;
    this.description = tool.description;
    this.schema = tool.schema as ToolSchemaBase;
    this.returnDirect = tool.returnDirect;
    this.#tool = tool;
    this.#target = target;
    this.#options = options;
  }

  override async invoke<TInput extends StructuredToolCallInput, TConfig extends ToolRunnableConfig | undefined>(
    input: TInput,
    config?: TConfig,
  ): Promise<ToolReturnType<TInput, TConfig, ToolOutput>> {
    return this.#guard(input, config, () => this.#tool.invoke(input, config));
  }

  /** @deprecated Use `invoke`; guarded all the same. */
  override async call<TArg extends StructuredToolCallInput, TConfig extends ToolRunnableConfig | undefined>(
    arg: TArg,
    configArg?: TConfig,
    tags?: string[],
  ): Promise<ToolReturnType<TArg, TConfig, ToolOutput>> {
    return this.#guard(arg, configArg, () => this.#tool.call(arg, configArg, tags));
  }

  // Never reached through invoke or call, which hand the call to the wrapped tool; guarded for direct callers.
  protected override async _call(
    arg: unknown,
    _runManager?: CallbackManagerForToolRun,
    parentConfig?: ToolRunnableConfig,
  ): Promise<ToolOutput> {
    return this.invoke(arg as StructuredToolCallInput, parentConfig);
  }

  async #guard<T>(input: unknown, config: ToolRunnableConfig | undefined, run: () => Promise<T>): Promise<T> {
    const toolCall = isToolCall(input) ? input : config?.toolCall;
    const args = isToolCall(input) ? input.args : input;
    const call: CheckedCall = {
      name: this.name,
      // String-input tools take `{ input }`, which is how their schema names it.
      args: isRecord(args) ? args : { input: args },
      id: toolCall?.id,
      target: this.#target,
      annotations: annotationsOf(this),
    };
    const verdict = await checkCall(
      call,
      {
        delegation: resolveDelegation(this.#options.delegation, contextDelegation(config?.context)),
        interrupt: (config as { interrupt?: (value: unknown) => unknown } | undefined)?.interrupt,
        signal: config?.signal,
      },
      this.#options,
    );
    if (verdict.allowed) return run();
    // Same shape as the tool's own answer: a ToolMessage for a tool call, plain content for bare arguments.
    return (call.id === undefined ? verdict.refusal : refusalMessage(call, verdict.refusal)) as T;
  }
}

function isToolCall(value: unknown): value is ToolCall {
  return isRecord(value) && value.type === "tool_call";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `fields` without its undefined properties, which `exactOptionalPropertyTypes` keeps apart from missing ones. */
function defined<T extends object>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
