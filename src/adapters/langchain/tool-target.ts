import type { ToolTarget } from "../../cerbos-request.ts";
import { InvalidInputError } from "../../errors.ts";

/** How to tell which server and tool a LangChain tool name stands for. */
export interface ToolTargetOptions {
  /**
   * The server every tool belongs to. A `<server>__` prefix that `@langchain/mcp-adapters` put in a name (with
   * `prefixToolNameWithServerName`, after any `additionalToolNamePrefix`) is removed to get the tool.
   *
   * @defaultValue the part of the name before its first `__`, as `prefixToolNameWithServerName: true` writes it
   */
  server?: string | undefined;
  /**
   * Maps a tool name to its server and tool when neither default fits. It must be exact: the PDP decides about
   * the tool it returns, and the tool named `toolName` is what runs.
   *
   * @defaultValue none: `server` and the name decide
   */
  resolveTool?: ((toolName: string) => ToolTarget) | undefined;
}

const separator = "__";

/**
 * The server and tool behind a tool name. Throws {@link InvalidInputError} when it cannot tell, so that an unknown
 * tool is refused rather than authorized as something else.
 */
export function toolTarget(toolName: string, options: ToolTargetOptions): ToolTarget {
  const { server, resolveTool } = options;
  if (resolveTool !== undefined) return resolveTool(toolName);
  if (server !== undefined) return { server, tool: withoutServerPrefix(toolName, server) };
  const at = toolName.indexOf(separator);
  if (at <= 0 || at + separator.length === toolName.length) {
    throw new InvalidInputError(
      "options.server",
      `cannot tell which server tool "${toolName}" belongs to: pass server or resolveTool, ` +
        "or load MCP tools with prefixToolNameWithServerName: true",
    );
  }
  return { server: toolName.slice(0, at), tool: toolName.slice(at + separator.length) };
}

/**
 * The name after `<server>__` when it starts with it or has it right after another prefix, else the whole name. Only
 * the adapter's own prefix goes: any other rewrite could authorize one tool and run another.
 */
function withoutServerPrefix(toolName: string, server: string): string {
  const prefix = `${server}${separator}`;
  if (toolName.startsWith(prefix)) return toolName.slice(prefix.length);
  const at = toolName.indexOf(`${separator}${prefix}`);
  return at === -1 ? toolName : toolName.slice(at + separator.length + prefix.length);
}
