import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { PolicyYamlError, parsePolicyYaml, policyProfile, readPolicyProfile } from "../../src/plan-cache/index.ts";

const policyDir = fileURLToPath(new URL("../../policies/", import.meta.url));

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function policyFolder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "hopguard-profile-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** A resource policy for kind `mcp::t` with one rule per `{ actions, expr?, output?, derivedRoles? }`. */
function resourcePolicy(rules: Record<string, unknown>[], extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: "api.cerbos.dev/v1",
    resourcePolicy: {
      resource: "mcp::t",
      version: "default",
      ...extra,
      rules: rules.map(({ expr, ...rule }, index) => ({
        name: `r${index}`,
        effect: "EFFECT_ALLOW",
        roles: ["*"],
        ...rule,
        ...(expr === undefined ? {} : { condition: { match: { expr } } }),
      })),
    },
  });
}

describe("which (kind, action) pairs the repo's policies let a plan answer", () => {
  it("caches reads with the path they test, never move_file, and every tool of memory and notes", async () => {
    const profile = await readPolicyProfile(policyDir);
    expect(profile.pair("mcp::filesystem", "read_file")).toEqual({
      cacheable: true,
      requiredPaths: [["arguments", "path"]],
    });
    expect(profile.pair("mcp::filesystem", "read_multiple_files")).toEqual({
      cacheable: true,
      requiredPaths: [["arguments", "paths"]],
    });
    expect(profile.pair("mcp::filesystem", "move_file")).toEqual({
      cacheable: false,
      reason: 'rule "move-in-workspace" in mcp_filesystem.yaml has outputs, which plans do not carry',
    });
    expect(profile.pair("mcp::memory", "create_entities")).toEqual({ cacheable: true, requiredPaths: [] });
    expect(profile.pair("mcp::notes", "any_tool")).toEqual({ cacheable: true, requiredPaths: [] });
    expect(profile.pair("agent", "delegate")).toEqual({ cacheable: true, requiredPaths: [] });
    // has(R.attr.uri): a top-level attribute the planner misjudges.
    expect(profile.pair("mcp::filesystem::resource", "read")).toMatchObject({ cacheable: false });
  });
});

describe("policy profile: what sends a pair live", () => {
  it("a rule with outputs, even one matching by wildcard", async () => {
    const dir = policyFolder({
      "t.json": resourcePolicy([{ actions: ["*"], output: { when: { ruleActivated: '"x"' } } }]),
    });
    expect((await readPolicyProfile(dir)).pair("mcp::t", "anything")).toMatchObject({ cacheable: false });
  });

  it("the clock, in a rule, a variable it uses, or a derived role it names", async () => {
    const derivedRoles = JSON.stringify({
      apiVersion: "api.cerbos.dev/v1",
      derivedRoles: {
        name: "roles",
        definitions: [
          { name: "daytime", parentRoles: ["user"], condition: { match: { expr: "now().getHours() > 8" } } },
          { name: "always", parentRoles: ["user"] },
        ],
      },
    });
    const dir = policyFolder({
      "roles.json": derivedRoles,
      "t.json": resourcePolicy(
        [
          { actions: ["direct"], expr: 'timestamp(R.attr.arguments.at) > now() && R.attr.arguments.s == "a"' },
          { actions: ["via_variable"], expr: "V.fresh" },
          { actions: ["via_role"], derivedRoles: ["daytime"] },
          { actions: ["fine"], derivedRoles: ["always"], expr: 'R.attr.arguments.s == "a"' },
        ],
        {
          importDerivedRoles: ["roles"],
          variables: { local: { fresh: "R.attr.arguments.at.timeSince() < duration('1h')" } },
        },
      ),
    });
    const profile = await readPolicyProfile(dir);
    for (const action of ["direct", "via_variable", "via_role"]) {
      expect(profile.pair("mcp::t", action)).toMatchObject({ cacheable: false });
    }
    expect(profile.pair("mcp::t", "fine")).toEqual({ cacheable: true, requiredPaths: [] });
  });

  it("has() on anything but a plain path under the arguments or the principal", async () => {
    const dir = policyFolder({
      "exported.yaml": [
        "apiVersion: api.cerbos.dev/v1",
        "exportVariables:",
        "  name: shared",
        "  definitions:",
        "    args: R.attr.arguments",
      ].join("\n"),
      "t.json": resourcePolicy(
        [
          { actions: ["argument"], expr: "has(V.args.path) && V.args.path != ''" },
          { actions: ["principal"], expr: "has(P.attr.team) && has(request.principal.attr.x)" },
          { actions: ["top_level"], expr: "has(R.attr.owner)" },
          { actions: ["lambda"], expr: "R.attr.arguments.items.all(i, has(i.name))" },
          { actions: ["indexed"], expr: 'has(V["args"].path)' },
          { actions: ["method"], expr: "R.attr.arguments.m.has(x)" },
          { actions: ["undefined_variable"], expr: "has(V.nothing.path)" },
        ],
        { variables: { import: ["shared"], local: { deep: "V.args" } } },
      ),
    });
    const profile = await readPolicyProfile(dir);
    expect(profile.pair("mcp::t", "argument")).toEqual({ cacheable: true, requiredPaths: [["arguments", "path"]] });
    expect(profile.pair("mcp::t", "principal")).toEqual({ cacheable: true, requiredPaths: [] });
    for (const action of ["top_level", "lambda", "indexed", "method", "undefined_variable"]) {
      expect({ action, profile: profile.pair("mcp::t", action) }).toMatchObject({
        action,
        profile: { cacheable: false },
      });
    }
  });

  it("schemas, and everything when a principal or role policy reads the clock, or a file cannot be read", async () => {
    const withSchemas = policyFolder({
      "t.json": resourcePolicy([{ actions: ["a"] }], { schemas: { resourceSchema: { ref: "cerbos:///t.json" } } }),
    });
    expect((await readPolicyProfile(withSchemas)).pair("mcp::t", "a")).toMatchObject({ cacheable: false });

    const principalPolicy = JSON.stringify({
      apiVersion: "api.cerbos.dev/v1",
      principalPolicy: {
        principal: "alice",
        version: "default",
        rules: [
          {
            resource: "mcp::other",
            actions: [
              { action: "*", effect: "EFFECT_DENY", condition: { match: { expr: "now() > timestamp(P.attr.until)" } } },
            ],
          },
        ],
      },
    });
    const withPrincipalPolicy = policyFolder({
      "t.json": resourcePolicy([{ actions: ["a"] }]),
      "p.json": principalPolicy,
    });
    expect((await readPolicyProfile(withPrincipalPolicy)).pair("mcp::t", "a")).toMatchObject({ cacheable: false });

    const unreadable = policyFolder({ "t.json": resourcePolicy([{ actions: ["a"] }]), "bad.yaml": "a: &anchor b\n" });
    expect((await readPolicyProfile(unreadable)).pair("mcp::t", "a")).toMatchObject({
      cacheable: false,
      reason: expect.stringContaining("bad.yaml"),
    });
  });

  it("skips what the Cerbos disk store skips: tests, testdata and hidden files", async () => {
    const dir = policyFolder({
      "t.json": resourcePolicy([{ actions: ["a"] }]),
      "t_test.yaml": "not: [a policy",
      "testdata/principals.yaml": "principals: &x {}",
      ".hidden.yaml": "{",
    });
    expect((await readPolicyProfile(dir)).pair("mcp::t", "a")).toEqual({ cacheable: true, requiredPaths: [] });
  });

  it("refuses documents it does not know as policies", () => {
    expect(policyProfile([{ apiVersion: "api.cerbos.dev/v1", somethingNew: {} }]).pair("mcp::t", "a")).toMatchObject({
      cacheable: false,
    });
  });
});

describe("the policy YAML reader", () => {
  it("reads block and flow collections, quoted, plain and block scalars, comments and several documents", () => {
    const text = [
      "# a comment",
      "apiVersion: api.cerbos.dev/v1 # trailing",
      "list:",
      "- one",
      "-   two: 2",
      "    three: 'it''s'",
      'flow: ["a", b, {c: d},',
      "       'e']",
      "folded: >-",
      "  first",
      "  second",
      "literal: |",
      "  keep",
      "    indented",
      'quoted: "tab\\there \\u00e9 \\"q\\""',
      "plain: a long",
      "  continued line",
      "empty:",
      "---",
      "second: document",
    ].join("\n");
    expect(parsePolicyYaml(text)).toEqual([
      {
        apiVersion: "api.cerbos.dev/v1",
        list: ["one", { two: "2", three: "it's" }],
        flow: ["a", "b", { c: "d" }, "e"],
        folded: "first second",
        literal: "keep\n  indented\n",
        quoted: 'tab\there é "q"',
        plain: "a long continued line",
        empty: "",
      },
      { second: "document" },
    ]);
  });

  it("resolves anchors and aliases as Cerbos does", () => {
    expect(parsePolicyYaml("a: &x [1, 2]\nb: *x\n")).toEqual([{ a: ["1", "2"], b: ["1", "2"] }]);
  });

  it("fails closed on duplicate keys, tabs and malformed input", () => {
    for (const text of ["a: 1\na: 2\n", "a:\n\t- 1\n", "a: [1, 2\n", "a: b: c\n", 'a: "\\q"\n']) {
      expect(() => parsePolicyYaml(text), JSON.stringify(text)).toThrow(PolicyYamlError);
    }
  });
});
