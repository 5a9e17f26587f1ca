import type { Tool } from "@modelcontextprotocol/sdk/types.js";

/**
 * What a tool does to the world, by its MCP annotations, read as the spec defines their defaults: a tool is not
 * read-only, is destructive and is open-world unless it says otherwise. So a tool that says nothing lands in the
 * most guarded class.
 */
export type ToolEffect = "read-only" | "additive" | "destructive";

/** Who may call destructive tools: the user only, or agents too once a person approves each call. */
export type DestructivePolicy = "users" | "approval";

/** Who may call one tool under the starter policy, and why. */
export interface ToolAccess {
  readonly tool: string;
  readonly effect: ToolEffect;
  /**
   * The tool's name holds characters Cerbos reads as an action pattern (`* ? [ ] { } \`): written into a rule, a
   * tool named `*` would stand for every tool. No starter rule names it, so nobody may call it until a person writes
   * its rule.
   */
  readonly patternName: boolean;
  /** The tool reaches outside the server's own world (the web, other systems): it needs {@link openWorldRole}. */
  readonly openWorld: boolean;
  /** The role every hop must hold to call an open-world tool; `undefined` for closed-world tools. */
  readonly role: string | undefined;
  /** The user acting for themselves: allowed (with the role, for open-world tools) unless the name is a pattern. */
  readonly user: "yes" | "no";
  /** An agent acting for a user who may: `"approval"` when a person must approve each call. */
  readonly agent: "yes" | "approval" | "no";
  /** The names of the tool's arguments, from its input schema: what a condition on `R.attr.arguments` can use. */
  readonly arguments: readonly string[];
  /** The annotations the server listed, as they were. */
  readonly annotations: Readonly<Record<string, unknown>>;
}

/** The role open-world tools of `server` sit behind, e.g. `filesystem_open_world`. */
export function openWorldRole(server: string): string {
  return `${server.replace(/[^A-Za-z0-9_]/g, "_")}_open_world`;
}

/** Characters that make a Cerbos action a glob pattern, or escape one. */
const patternCharacters = /[*?[\]{}\\]/;

/** Sorts every tool into its class and says who may call it. */
export function toolAccess(server: string, tools: readonly Tool[], destructive: DestructivePolicy): ToolAccess[] {
  return tools.map((tool) => {
    const hints = (tool.annotations ?? {}) as Record<string, unknown>;
    const readOnly = hints.readOnlyHint === true;
    const effect: ToolEffect = readOnly ? "read-only" : hints.destructiveHint === false ? "additive" : "destructive";
    const openWorld = hints.openWorldHint !== false;
    const patternName = patternCharacters.test(tool.name);
    return {
      tool: tool.name,
      effect,
      patternName,
      openWorld,
      role: openWorld ? openWorldRole(server) : undefined,
      user: patternName ? "no" : "yes",
      agent: patternName ? "no" : effect !== "destructive" ? "yes" : destructive === "approval" ? "approval" : "no",
      arguments: Object.keys(tool.inputSchema?.properties ?? {}),
      annotations: hints,
    };
  });
}
