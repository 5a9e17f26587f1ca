import type { Tool } from "ai";
import type { ToolCall, ToolTarget } from "../../cerbos-request.ts";
import { InvalidInputError } from "../../errors.ts";

/** How to name the server and tool of each entry of a tool set. */
export interface ToolTargetOptions {
  /**
   * The MCP server every tool of the set belongs to; each tool-set key is the tool's name.
   *
   * @defaultValue none: give `server` or `resolveTool`
   */
  server?: string | undefined;
  /**
   * Maps a tool-set key to its server and tool, for a set that mixes servers or renames tools (say
   * `fs_read_file`). Takes precedence over `server`.
   *
   * @defaultValue `(toolName) => ({ server, tool: toolName })`
   */
  resolveTool?: ((toolName: string) => ToolTarget) | undefined;
}

/**
 * Checks the mapping options once, up front, and returns the mapping. Each answer of `resolveTool` is read once into
 * a frozen copy: a target whose getters answer differently later cannot have one tool checked as another.
 */
export function toolTargetResolver(options: ToolTargetOptions | undefined): (toolName: string) => ToolTarget {
  const { server, resolveTool } = options ?? {};
  if (resolveTool !== undefined) {
    if (typeof resolveTool !== "function") throw new InvalidInputError("options.resolveTool", "must be a function");
    return (toolName) => {
      // Whatever it returns is copied as is: a malformed target is the core's to refuse, with its span.
      const target = (resolveTool(toolName) ?? {}) as Partial<ToolTarget>;
      const { server: mapped, tool } = target;
      return Object.freeze({ server: mapped, tool }) as ToolTarget;
    };
  }
  if (typeof server !== "string" || server === "" || server.includes("/")) {
    throw new InvalidInputError(
      "options.server",
      "must name the MCP server the tools belong to (a non-empty string without '/'), or pass resolveTool",
    );
  }
  return (toolName) => Object.freeze({ server, tool: toolName });
}

/** hopguard's view of one AI SDK tool call; anything malformed is left for the core to refuse. */
export function toToolCall(target: ToolTarget, tool: Tool | undefined, input: unknown, toolCallId: unknown): ToolCall {
  return {
    server: target?.server,
    tool: target?.tool,
    arguments: input as Record<string, unknown> | undefined,
    annotations: annotationsOf(tool),
    toolCallId: toolCallId as string | undefined,
  };
}

/** The MCP annotations (`readOnlyHint`, `destructiveHint`, ...) that `@ai-sdk/mcp` keeps in `tool.metadata`. */
export function annotationsOf(tool: Tool | undefined): Record<string, unknown> | undefined {
  const annotations: unknown = tool?.metadata?.annotations;
  return typeof annotations === "object" && annotations !== null && !Array.isArray(annotations)
    ? (annotations as Record<string, unknown>)
    : undefined;
}
