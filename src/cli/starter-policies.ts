import type { ServerListing } from "./server-listing.ts";
import { starterTests } from "./starter-tests.ts";
import { type DestructivePolicy, type ToolAccess, toolAccess } from "./tool-access.ts";
import { approvalOutput, type ToolRule, toolRules } from "./tool-rules.ts";
import { blockList, comment, quote, scalar } from "./yaml-text.ts";

/** A starter policy set: the files to write (paths relative to the policy folder) and who may do what. */
export interface StarterPolicySet {
  /** Relative path → file text, in the order they are reported. */
  readonly files: ReadonlyMap<string, string>;
  readonly tools: readonly ToolAccess[];
  /** Listed resources' URIs, canonical as hopguard's server guard checks them (`new URL(uri).href`). */
  readonly resources: readonly string[];
  readonly templates: readonly string[];
  readonly prompts: readonly string[];
}

/** The derived roles every starter policy imports. */
export const chainRoles = "hopguard_chain";

/** The policy file name part for a server name: `mcp_<server>`. */
export function policyFileStem(server: string): string {
  return `mcp_${server.replace(/[^A-Za-z0-9_-]/g, "_")}`;
}

/**
 * Writes the starter policy set for a server from its listings: one `mcp::<server>` resource policy whose rules
 * follow the tools' annotations, policies for its resources and prompts (when it lists any), the `agent` delegation
 * policy, the derived roles for chains, and Cerbos test suites with one allowed and one denied case per tool.
 */
export function starterPolicies(options: {
  server: string;
  listing: ServerListing;
  destructive: DestructivePolicy;
}): StarterPolicySet {
  const { server, listing, destructive } = options;
  const tools = toolAccess(server, listing.tools, destructive);
  const resources = [...new Set(listing.resources.map((resource) => canonicalUri(resource.uri)))];
  const templates = [...new Set(listing.resourceTemplates.map((template) => template.uriTemplate))];
  const prompts = [...new Set(listing.prompts.map((prompt) => prompt.name))];
  const stem = policyFileStem(server);
  const origin = `${listing.serverInfo.name} ${listing.serverInfo.version}`.trim();
  const rules = toolRules(tools, destructive);

  const files = new Map<string, string>();
  files.set("derived_roles.yaml", derivedRolesPolicy());
  files.set("agent.yaml", agentPolicy());
  if (rules.length > 0) files.set(`${stem}.yaml`, toolPolicy(server, origin, tools, rules, destructive));
  if (resources.length + templates.length > 0) {
    files.set(`${stem}_resource.yaml`, resourcePolicy(server, origin, resources, templates));
  }
  if (prompts.length > 0) files.set(`${stem}_prompt.yaml`, promptPolicy(server, origin, prompts));
  for (const [path, text] of starterTests({ server, stem, tools, rules, resources, templates, prompts })) {
    files.set(path, text);
  }
  return { files, tools, resources, templates, prompts };
}

function toolPolicy(
  server: string,
  origin: string,
  tools: readonly ToolAccess[],
  rules: readonly ToolRule[],
  destructive: DestructivePolicy,
): string {
  const role = tools.find((tool) => tool.role !== undefined)?.role;
  const header = comment([
    `Tools of the MCP server "${server}" (${origin}),`,
    "written by `hopguard init` from the server's own tool list.",
    `hopguard checks a call of tool T at every hop of the chain as resource kind "mcp::${server}", id and action T.`,
    "Each rule follows the tools' MCP annotations, read with the spec's defaults (a tool that says nothing is",
    "taken as destructive and open-world):",
    "  read-only, closed-world      the user, and agents acting for a user who may",
    "  additive (not destructive)   the same",
    destructive === "approval"
      ? "  destructive                  the user; agents only once a person approves (an approval output)"
      : "  destructive                  the user only",
    `  open-world                   as above, for hops that hold the role "${role ?? `${server}_open_world`}"`,
    "Each tool's arguments are noted beside it: narrow a rule with a condition on R.attr.arguments.",
    "A tool the server adds later is in no rule: it is denied until you add it (`hopguard lint` lists it).",
  ]);
  const variables =
    role === undefined ? "" : `  variables:\n    local:\n      open_world: ${scalar(`${quote(role)} in P.roles`)}\n`;
  const ruleTexts = rules.map((rule) => {
    const lines = [
      comment([rule.why], 4),
      `    - name: ${rule.name}`,
      "      actions:",
      blockList(rule.tools, 8, (name) => argumentsNote(tools.find((tool) => tool.tool === name))),
      "      effect: EFFECT_ALLOW",
      `      derivedRoles: [${rule.derivedRoles.map(quote).join(", ")}]`,
    ];
    if (rule.openWorld) lines.push("      condition:", "        match:", "          expr: V.open_world");
    if (rule.approval) {
      lines.push("      output:", "        when:", `          ruleActivated: ${scalar(approvalOutput)}`);
    }
    return lines.join("\n");
  });
  return `${header}
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ${quote(`mcp::${server}`)}
  version: default
  importDerivedRoles: [${quote(chainRoles)}]
${variables}  rules:
${ruleTexts.join("\n\n")}
`;
}

function resourcePolicy(
  server: string,
  origin: string,
  resources: readonly string[],
  templates: readonly string[],
): string {
  const header = comment([
    `Resources of the MCP server "${server}" (${origin}),`,
    "written by `hopguard init` from its resource listings.",
    `hopguard's server guard (guardMcpServer) checks reading one as kind "mcp::${server}::resource", action "read",`,
    "attributes { server, uri, template?, name?, mimeType? }. The user, and the agents acting for them, read what",
    "the server listed: each listed URI, and any URI of a listed template. Narrow it per user (e.g. on a URI prefix).",
  ]);
  const tests = [
    resources.length > 0 ? `V.uri in [${resources.map(quote).join(", ")}]` : undefined,
    templates.length > 0 ? `V.template in [${templates.map(quote).join(", ")}]` : undefined,
  ].filter((test) => test !== undefined);
  return `${header}
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ${quote(`mcp::${server}::resource`)}
  version: default
  importDerivedRoles: [${quote(chainRoles)}]
  variables:
    local:
      uri: 'has(R.attr.uri) ? R.attr.uri : ""'
      template: 'has(R.attr.template) ? R.attr.template : ""'
  rules:
    - name: listed-resources
      actions: ["read"]
      effect: EFFECT_ALLOW
      derivedRoles: ["acting_user", "delegated_agent"]
      condition:
        match:
          expr: ${scalar(tests.join(" || "))}
`;
}

function promptPolicy(server: string, origin: string, prompts: readonly string[]): string {
  const header = comment([
    `Prompts of the MCP server "${server}" (${origin}),`,
    "written by `hopguard init` from its prompt listing.",
    `hopguard's server guard checks getting one as kind "mcp::${server}::prompt", action "get", attributes`,
    "{ server, name, arguments }. The user, and the agents acting for them, get the prompts the server listed.",
  ]);
  return `${header}
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ${quote(`mcp::${server}::prompt`)}
  version: default
  importDerivedRoles: [${quote(chainRoles)}]
  rules:
    - name: listed-prompts
      actions: ["get"]
      effect: EFFECT_ALLOW
      derivedRoles: ["acting_user", "delegated_agent"]
      condition:
        match:
          expr: ${scalar(`R.attr.name in [${prompts.map(quote).join(", ")}]`)}
`;
}

function derivedRolesPolicy(): string {
  return `# Roles that depend on where a principal stands in a delegation chain, written by \`hopguard init\`. hopguard sets,
# on every hop's principal:
#   P.attr.kind        "user" | "agent"
#   P.attr.depth       0 for the user, 1 for the first agent, ...
#   P.attr.chain       principal ids from the user down to this hop
#   P.attr.onBehalfOf  the delegating user: { id, roles, attr }
#   P.attr.scope       the hop's effective scope: { tools?, expiresAt?, maxDepth? }
apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: ${chainRoles}
  definitions:
    # The human at the root of the chain, acting for themselves.
    - name: acting_user
      parentRoles: ["user"]
      condition:
        match:
          expr: P.attr.kind == "user" && P.attr.depth == 0 && P.attr.onBehalfOf.id == P.id

    # An agent whose chain starts at the user it claims to act for, and ends at itself.
    - name: delegated_agent
      parentRoles: ["agent"]
      condition:
        match:
          all:
            of:
              - expr: P.attr.kind == "agent" && P.attr.depth >= 1
              - expr: size(P.attr.chain) == int(P.attr.depth) + 1
              - expr: P.attr.chain[0] == P.attr.onBehalfOf.id
              - expr: P.attr.chain[size(P.attr.chain) - 1] == P.id
`;
}

function agentPolicy(): string {
  return `# Delegation, written by \`hopguard init\`: before an agent joins a chain, every hop already in it asks for action
# "delegate" on resource kind "agent" (id = the agent's id); R.attr holds the agent's roles, attributes and the
# scope it would get.
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: "agent"
  version: default
  importDerivedRoles: ["${chainRoles}"]
  rules:
    # A user may hand work to any agent.
    - name: users-delegate-to-agents
      actions: ["delegate"]
      effect: EFFECT_ALLOW
      derivedRoles: ["acting_user"]
      condition:
        match:
          expr: '"agent" in R.attr.roles'

    # An agent may hand a part of its task to another agent, two agents deep at most.
    - name: agents-delegate-to-agents
      actions: ["delegate"]
      effect: EFFECT_ALLOW
      derivedRoles: ["delegated_agent"]
      condition:
        match:
          all:
            of:
              - expr: '"agent" in R.attr.roles'
              - expr: size(P.attr.chain) < 3
`;
}

/** The tool's arguments, for conditions on `R.attr.arguments` (e.g. a path inside the user's workspace). */
function argumentsNote(tool: ToolAccess | undefined): string {
  const names = tool?.arguments ?? [];
  return names.length === 0 ? "" : `arguments: ${names.join(", ")}`;
}

function canonicalUri(uri: string): string {
  try {
    return new URL(uri).href;
  } catch {
    return uri;
  }
}
