import type { ToolAccess } from "./tool-access.ts";
import { approvalReason, type ToolRule } from "./tool-rules.ts";
import { comment, flow } from "./yaml-text.ts";

/** What the starter test suites are written from. */
export interface StarterTestInput {
  readonly server: string;
  readonly stem: string;
  readonly tools: readonly ToolAccess[];
  readonly rules: readonly ToolRule[];
  readonly resources: readonly string[];
  readonly templates: readonly string[];
  readonly prompts: readonly string[];
}

interface Principal {
  readonly id: string;
  readonly roles: readonly string[];
  readonly attr: Record<string, unknown>;
}

/** One expected effect of one principal on one resource and action, with the outputs an allow must carry. */
interface Expectation {
  readonly principal: string;
  readonly effect: "EFFECT_ALLOW" | "EFFECT_DENY";
  readonly outputs?: { src: string; val: unknown } | undefined;
}

interface TestCase {
  readonly name: string;
  readonly resource: string;
  readonly action: string;
  readonly allow: Expectation;
  readonly deny: Expectation;
}

/**
 * The Cerbos test suites of a starter policy set: one allowed and one denied case per tool (and per listed
 * resource, template and prompt), and the delegation policy's own cases. Principals are written as hopguard sends
 * them: each hop's id and roles plus the chain attributes (`kind`, `depth`, `chain`, `onBehalfOf`, `scope`).
 */
export function starterTests(input: StarterTestInput): Map<string, string> {
  const { server, stem } = input;
  const role = input.tools.find((tool) => tool.role !== undefined)?.role;
  const principals = chainPrincipals(role);
  const resources = new Map<string, unknown>();
  const cases: TestCase[] = [];
  const keys = new Set<string>();
  const key = (prefix: string, name: string): string => {
    const base = `${prefix}_${name.replace(/[^A-Za-z0-9_]/g, "_")}`;
    let unique = base;
    for (let n = 2; keys.has(unique); n++) unique = `${base}_${n}`;
    keys.add(unique);
    return unique;
  };

  for (const tool of input.tools) {
    // A tool no rule names (see ToolAccess.patternName) has no case: its name would be read as a pattern here too.
    if (tool.patternName) continue;
    const resource = key("tool", tool.tool);
    resources.set(resource, {
      kind: `mcp::${server}`,
      id: tool.tool,
      attr: { server, tool: tool.tool, arguments: {}, annotations: jsonOnly(tool.annotations) },
    });
    cases.push({ ...toolCase(server, tool, input.rules), resource, action: tool.tool });
  }
  input.resources.forEach((uri) => {
    const resource = key("resource", uri);
    resources.set(resource, { kind: `mcp::${server}::resource`, id: uri, attr: { server, uri } });
    cases.push({
      name: `resource ${uri}: an agent acting for the user may read it; a forged chain may not`,
      resource,
      action: "read",
      allow: { principal: "agent", effect: "EFFECT_ALLOW" },
      deny: { principal: "forged_agent", effect: "EFFECT_DENY" },
    });
  });
  input.templates.forEach((template) => {
    const resource = key("template", template);
    resources.set(resource, { kind: `mcp::${server}::resource`, id: template, attr: { server, template } });
    cases.push({
      name: `resource template ${template}: an agent acting for the user may read from it; a forged chain may not`,
      resource,
      action: "read",
      allow: { principal: "agent", effect: "EFFECT_ALLOW" },
      deny: { principal: "forged_agent", effect: "EFFECT_DENY" },
    });
  });
  input.prompts.forEach((prompt) => {
    const resource = key("prompt", prompt);
    resources.set(resource, {
      kind: `mcp::${server}::prompt`,
      id: prompt,
      attr: { server, name: prompt, arguments: {} },
    });
    cases.push({
      name: `prompt ${prompt}: an agent acting for the user may get it; a forged chain may not`,
      resource,
      action: "get",
      allow: { principal: "agent", effect: "EFFECT_ALLOW" },
      deny: { principal: "forged_agent", effect: "EFFECT_DENY" },
    });
  });

  const used = new Set(cases.flatMap((test) => [test.allow.principal, test.deny.principal]));
  const suite = [
    comment([
      `Cerbos tests of the starter policies for the MCP server "${server}", written by \`hopguard init\`: one allowed`,
      "and one denied case per tool, resource and prompt. `cerbos compile <policy folder>` runs them; keep them in",
      "step as you edit the policies.",
    ]),
    `name: ${flow(`${server} starter policies`)}`,
    `description: ${flow(`Who may call the tools of ${server}, as written by hopguard init`)}`,
    "principals:",
    ...[...principals].filter(([name]) => used.has(name)).map(([name, value]) => `  ${name}: ${flow(value)}`),
    "resources:",
    ...[...resources].map(([name, value]) => `  ${name}: ${flow(value)}`),
    "tests:",
    ...cases.map(testText),
  ];
  return new Map([
    ["tests/agent_test.yaml", agentSuite(principals)],
    [`tests/${stem}_test.yaml`, `${suite.join("\n")}\n`],
  ]);
}

function toolCase(server: string, tool: ToolAccess, rules: readonly ToolRule[]): Omit<TestCase, "resource" | "action"> {
  const label = `${tool.tool} (${tool.effect}${tool.openWorld ? ", open-world" : ""})`;
  const approvalRule = rules.find((rule) => rule.approval && rule.tools.includes(tool.tool));
  const outputs =
    approvalRule === undefined
      ? undefined
      : {
          src: `resource.mcp::${server}.vdefault#${approvalRule.name}`,
          val: { approval: "required", reason: approvalReason(tool.tool) },
        };
  const allow = (principal: string): Expectation => ({ principal, effect: "EFFECT_ALLOW", outputs });
  const deny = (principal: string): Expectation => ({ principal, effect: "EFFECT_DENY" });
  const withApproval = outputs === undefined ? "" : ", once a person approves";
  if (tool.agent === "no") {
    return tool.openWorld
      ? {
          name: `${label}: the user holding ${tool.role} may call it; an agent may not`,
          allow: allow("open_world_user"),
          deny: deny("open_world_agent"),
        }
      : { name: `${label}: the user may call it; an agent may not`, allow: allow("user"), deny: deny("agent") };
  }
  return tool.openWorld
    ? {
        name: `${label}: an agent holding ${tool.role} may call it${withApproval}; one without it may not`,
        allow: allow("open_world_agent"),
        deny: deny("agent"),
      }
    : {
        name: `${label}: an agent acting for the user may call it${withApproval}; a forged chain may not`,
        allow: allow("agent"),
        deny: deny("forged_agent"),
      };
}

function testText(test: TestCase): string {
  const expected = [test.allow, test.deny].map((expectation) =>
    flow({
      principal: expectation.principal,
      resource: test.resource,
      actions: { [test.action]: expectation.effect },
      outputs:
        expectation.outputs === undefined ? undefined : [{ action: test.action, expected: [expectation.outputs] }],
    }),
  );
  return [
    `  - name: ${flow(test.name)}`,
    "    input:",
    `      principals: ${flow([test.allow.principal, test.deny.principal])}`,
    `      resources: ${flow([test.resource])}`,
    `      actions: ${flow([test.action])}`,
    "    expected:",
    ...expected.map((line) => `      - ${line}`),
  ].join("\n");
}

/** The principals the suites use, keyed by their name in the suite. */
function chainPrincipals(role: string | undefined): Map<string, Principal> {
  const user = hop({ id: "user", roles: ["user"] }, [], undefined);
  const principals = new Map<string, Principal>([
    ["user", user],
    ["agent", hop({ id: "agent", roles: ["agent"] }, ["user"], user)],
    // An agent whose chain does not start at the user it claims to act for: what a forged principal looks like.
    ["forged_agent", hop({ id: "agent", roles: ["agent"] }, ["someone_else"], user)],
    ["sub_agent", hop({ id: "sub_agent", roles: ["agent"] }, ["user", "agent"], user)],
  ]);
  if (role !== undefined) {
    const openWorldUser = hop({ id: "open_world_user", roles: ["user", role] }, [], undefined);
    principals.set("open_world_user", openWorldUser);
    principals.set(
      "open_world_agent",
      hop({ id: "open_world_agent", roles: ["agent", role] }, ["open_world_user"], openWorldUser),
    );
  }
  return principals;
}

/** A principal as hopguard sends it: the hop's own id and roles, and where it stands in its chain. */
function hop(actor: { id: string; roles: string[] }, above: string[], user: Principal | undefined): Principal {
  const chain = [...above, actor.id];
  const onBehalfOf = user ?? { id: actor.id, roles: actor.roles, attr: {} };
  return {
    id: actor.id,
    roles: actor.roles,
    attr: {
      kind: user === undefined ? "user" : "agent",
      depth: chain.length - 1,
      chain,
      onBehalfOf: { id: onBehalfOf.id, roles: onBehalfOf.roles, attr: {} },
      scope: {},
    },
  };
}

function agentSuite(principals: ReadonlyMap<string, Principal>): string {
  const names = ["user", "agent", "forged_agent", "sub_agent"];
  const agent = (roles: string[]) => ({ roles, attr: {}, scope: {} });
  const delegate = (principal: string, resource: string, effect: string) =>
    `      - ${flow({ principal, resource, actions: { delegate: effect } })}`;
  return `${comment(["Cerbos tests of the starter delegation policy (agent.yaml), written by `hopguard init`."])}
name: "agent delegation"
description: "Who may hand work to which agent, as written by hopguard init"
principals:
${names.map((name) => `  ${name}: ${flow(principals.get(name))}`).join("\n")}
resources:
  helper: ${flow({ kind: "agent", id: "helper", attr: agent(["agent"]) })}
  not_an_agent: ${flow({ kind: "agent", id: "payroll", attr: agent(["service"]) })}
tests:
  - name: "a user delegates to agents, and to nothing else"
    input:
      principals: ["user"]
      resources: ["helper", "not_an_agent"]
      actions: ["delegate"]
    expected:
${delegate("user", "helper", "EFFECT_ALLOW")}
${delegate("user", "not_an_agent", "EFFECT_DENY")}
  - name: "an agent delegates to a sub-agent, two agents deep at most; a forged chain never"
    input:
      principals: ["agent", "sub_agent", "forged_agent"]
      resources: ["helper"]
      actions: ["delegate"]
    expected:
${delegate("agent", "helper", "EFFECT_ALLOW")}
${delegate("sub_agent", "helper", "EFFECT_DENY")}
${delegate("forged_agent", "helper", "EFFECT_DENY")}
`;
}

/** Annotations as JSON values only: a test resource's attributes must be plain data. */
function jsonOnly(value: Readonly<Record<string, unknown>>): unknown {
  return JSON.parse(JSON.stringify(value));
}
