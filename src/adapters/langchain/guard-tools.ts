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
import { refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import { isAgentTool } from "./agent-identity.ts";
import {
  annotationsOf,
  authorizedInput,
  type CheckedCall,
  checkCall,
  isRecord,
  refusalMessage,
  toolArguments,
} from "./call-check.ts";
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
 * The call is read once and its snapshot authorized; the wrapped tool then runs a fresh copy of exactly that
 * snapshot (JSON data: a `Date` or `URL` argument arrives as the string the PDP saw), never the caller's object.
 * Arguments are authorized as the model sent them, before the tool's schema parses them: avoid schemas whose
 * defaults or transforms would change what a policy looks at. The chain is the deepest in effect (see
 * {@link resolveDelegation}): a tool bound to an orchestrator's `delegation` and called inside a sub-agent's run
 * acts for the sub-agent's longer chain. Throws {@link InvalidInputError} when a tool's server
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
    return this.#guard(input, config, (authorized, authorizedConfig) =>
      this.#tool.invoke(authorized, authorizedConfig),
    );
  }

  /** @deprecated Use `invoke`; guarded all the same. */
  override async call<TArg extends StructuredToolCallInput, TConfig extends ToolRunnableConfig | undefined>(
    arg: TArg,
    configArg?: TConfig,
    tags?: string[],
  ): Promise<ToolReturnType<TArg, TConfig, ToolOutput>> {
    return this.#guard(arg, configArg, (authorized, authorizedConfig) =>
      this.#tool.call(authorized, authorizedConfig, tags),
    );
  }

  // Never reached through invoke or call, which hand the call to the wrapped tool; guarded for direct callers.
  protected override async _call(
    arg: unknown,
    _runManager?: CallbackManagerForToolRun,
    parentConfig?: ToolRunnableConfig,
  ): Promise<ToolOutput> {
    return this.invoke(arg as StructuredToolCallInput, parentConfig);
  }

  /**
   * Reads the caller's input once, authorizes its snapshot, and runs the wrapped tool with a fresh copy of exactly
   * that snapshot — never the caller's object, which a getter, a `toJSON` or another holder could change.
   */
  async #guard<T>(
    input: unknown,
    config: ToolRunnableConfig | undefined,
    run: (input: StructuredToolCallInput, config: ToolRunnableConfig | undefined) => Promise<T>,
  ): Promise<T> {
    const given = readToolInput(input);
    const configCall = config?.toolCall;
    // A tool call LangChain put in the config (the tool reads its id, and a tool function could read its args).
    const configEnvelope = isRecord(configCall) ? envelopeOf(configCall) : undefined;
    const envelope = given.envelope ?? configEnvelope;
    const wasRecord = isRecord(given.args);
    const call: CheckedCall = {
      name: this.name,
      args: toolArguments(given.args),
      id: envelope?.id,
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
    // Same shape as the tool's own answer: a ToolMessage for a tool call, plain content for bare arguments.
    const refuse = (refusal: string) =>
      (envelope?.id === undefined ? refusal : refusalMessage({ name: this.name, id: envelope.id }, refusal)) as T;
    if (!verdict.allowed) return refuse(verdict.refusal);
    const args = authorizedInput(verdict.call, wasRecord);
    // Bare arguments that read as a tool call the second time changed while being read: the wrapped tool would take
    // them for a tool call and run their inner `args`, which is not what the PDP judged as the arguments.
    if (given.envelope === undefined && isRecord(args) && args.type === "tool_call") {
      return refuse(refusalText(this.#target, "its arguments changed while they were read"));
    }
    const toolInput = given.envelope === undefined ? args : { ...given.envelope, args };
    const toolConfig =
      configEnvelope === undefined ? config : { ...config, toolCall: { ...configEnvelope, args } as ToolCall };
    return run(toolInput as StructuredToolCallInput, toolConfig);
  }
}

/** A tool call's envelope as read once: LangChain's `type`, `id` and `name` beside the arguments. */
interface ToolCallEnvelope {
  readonly type: "tool_call";
  readonly id: unknown;
  readonly name: unknown;
}

/** The caller's input, each part read once: a tool call's envelope and arguments, or bare arguments. */
function readToolInput(input: unknown): { envelope: ToolCallEnvelope | undefined; args: unknown } {
  if (!isRecord(input)) return { envelope: undefined, args: input };
  const { type } = input;
  if (type !== "tool_call") return { envelope: undefined, args: input };
  return { envelope: envelopeOf(input), args: input.args };
}

function envelopeOf(toolCall: Record<string, unknown>): ToolCallEnvelope {
  const { id, name } = toolCall;
  return { type: "tool_call", id, name };
}

/** `fields` without its undefined properties, which `exactOptionalPropertyTypes` keeps apart from missing ones. */
function defined<T extends object>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
