import type { Value } from "@cerbos/core";
import type { ToolCall, ToolCallCheck, ToolCallMapper, ValidatedToolCall } from "../../../cerbos-request.ts";
import { HopguardError } from "../../../errors.ts";

/** What the server's own listings say about a resource a chain reads (or a template it may complete). */
export interface ResourceFacts {
  /** The resource's URI, canonical (WHATWG `URL.href`); absent for a template, whose URI is not known yet. */
  readonly uri?: string | undefined;
  /** The URI template the resource belongs to, e.g. `file:///workspace/{user}/{file}`. */
  readonly template?: string | undefined;
  readonly name?: string | undefined;
  readonly mimeType?: string | undefined;
}

const factNames = ["uri", "template", "name", "mimeType"] as const;

/**
 * The policy names of what a guarded server offers besides tools: `<server>::resource` and `<server>::prompt`.
 * They are what a delegation's scope patterns name (`"filesystem::resource/file:///workspace/alice/*"`) and what the
 * span's `hopguard.mcp.server` says.
 */
export function resourceServer(server: string): string {
  return `${server}::resource`;
}

/** See {@link resourceServer}. */
export function promptServer(server: string): string {
  return `${server}::prompt`;
}

/**
 * The check for reading a resource (or seeing it, or completing a template's arguments): the "call" hopguard asks
 * the guard about, named `<server>::resource/<uri or template>`, with the facts the server's own listings give.
 */
export function resourceCall(server: string, facts: ResourceFacts): ToolCall {
  const annotations: Record<string, unknown> = {};
  for (const name of factNames) if (typeof facts[name] === "string") annotations[name] = facts[name];
  return { server: resourceServer(server), tool: facts.uri ?? facts.template ?? "", annotations };
}

/** The check for getting (or seeing) a prompt: `<server>::prompt/<name>`, with the arguments it is got with. */
export function promptCall(server: string, name: string, args?: Record<string, unknown> | undefined): ToolCall {
  return { server: promptServer(server), tool: name, arguments: args };
}

/**
 * The guard's mapper on a guarded server: tool calls go to `tools` (hopguard's contract: kind `mcp::<server>`, id
 * and action the tool's name), resources and prompts to their own kinds.
 *
 * @remarks
 * The Cerbos contract of a guarded MCP server's resources and prompts:
 *
 * | What | Kind | Id | Action | Attributes (`R.attr`) |
 * | --- | --- | --- | --- | --- |
 * | a resource | `mcp::<server>::resource` | its URI (a template's URI template in `resources/templates/list`) | `read` | `{ server, uri, template?, name?, mimeType? }` |
 * | a prompt | `mcp::<server>::prompt` | its name | `get` | `{ server, name, arguments }` |
 *
 * Write conditions on the attributes (`R.attr.uri`, `R.attr.name`), not on `R.id`: a listing checks every entry in
 * one request under a stand-in id, then asks the PDP's plan (which knows no id) about any it denied. A template has
 * no `uri` in its listing: the plan treats it as unknown, so a template is listed when some URI of it could be read.
 * Likewise a prompt is listed when some `arguments` could be allowed, as a tool is.
 */
export function serverChecks(server: string, tools: ToolCallMapper): ToolCallMapper {
  const resources = resourceServer(server);
  const prompts = promptServer(server);
  return (call: ValidatedToolCall): ToolCallCheck => {
    if (call.server === server) return tools(call);
    if (call.server === resources) {
      const attr: Record<string, Value> = { server };
      for (const name of factNames) {
        const value = call.annotations[name];
        if (typeof value === "string") attr[name] = value;
      }
      return { resource: { kind: `mcp::${resources}`, id: call.tool, attr }, action: "read" };
    }
    if (call.server === prompts) {
      return {
        resource: {
          kind: `mcp::${prompts}`,
          id: call.tool,
          attr: { server, name: call.tool, arguments: call.arguments },
        },
        action: "get",
      };
    }
    // Only this server's guard uses this mapper, and it names nothing else: a bug, refused rather than guessed at.
    throw new HopguardError("authorization_failed", `the server guard of "${server}" cannot check "${call.server}"`);
  };
}
