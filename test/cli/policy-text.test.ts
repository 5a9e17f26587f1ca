import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, describe, expect, test } from "vitest";
import { parse } from "yaml";
import { accessTable } from "../../src/cli/access-table.ts";
import { cerbosCompile } from "../../src/cli/cerbos-compile.ts";
import { policyCoverage } from "../../src/cli/policy-coverage.ts";
import { writePolicyFiles } from "../../src/cli/policy-folder.ts";
import { actionMatches, readPolicyRules } from "../../src/cli/policy-rules.ts";
import type { ServerListing } from "../../src/cli/server-listing.ts";
import { serverName } from "../../src/cli/server-name.ts";
import { starterPolicies } from "../../src/cli/starter-policies.ts";
import { approvalRequest, createGuard } from "../../src/index.ts";
import { startLocalPdp } from "../../src/local-pdp.ts";

// What `hopguard init` writes comes from a server, which may be hostile: names must stay names.
const temp = mkdtempSync(join(tmpdir(), "hopguard-cli-text-"));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const closedReadOnly = { readOnlyHint: true, openWorldHint: false };
const tool = (name: string, annotations: Tool["annotations"] = closedReadOnly): Tool => ({
  name,
  inputSchema: { type: "object" },
  annotations,
});
const listing = (tools: Tool[], extra: Partial<ServerListing> = {}): ServerListing => ({
  serverInfo: { name: "test-server", version: "1.0.0" },
  tools,
  resources: [],
  resourceTemplates: [],
  prompts: [],
  ...extra,
});

describe("starter policies from hostile names", () => {
  test("quotes, YAML words, comment marks and line breaks stay names; a name Cerbos reads as a pattern is in no rule", async () => {
    const plain = ['quote"d', "it's", "on", "#not-a-comment", 'x"\n        - "delete_all'];
    const tools = [
      ...plain.map((name) => tool(name)),
      tool("delete_all", { destructiveHint: true, openWorldHint: false }),
      tool("*"),
      tool("read_?"),
      tool("{a,b}"),
    ];
    const policies = starterPolicies({
      server: "evil",
      destructive: "approval",
      listing: listing(tools, {
        serverInfo: { name: "evil\nresourcePolicy:\n  resource: x", version: "1" },
        resources: [{ uri: "file:///a'b\"c", name: "odd" }],
        prompts: [{ name: 'p"q' }],
      }),
    });
    const folder = join(temp, "hostile");
    await writePolicyFiles(folder, policies.files, false);

    const compiled = await cerbosCompile(folder);
    expect(compiled.status, compiled.output).toBe(0);
    // Two cases per tool a rule names, per resource and per prompt; five for delegation.
    const cases = (plain.length + 1) * 2 + 2 + 2 + 5;
    expect(compiled.output).toContain(`${cases} tests executed [${cases} OK]`);

    const policy = parse(readFileSync(join(folder, "mcp_evil.yaml"), "utf8")) as {
      resourcePolicy: { resource: string; rules: { name: string; actions: string[] }[] };
    };
    expect(policy.resourcePolicy.resource).toBe("mcp::evil");
    const actions = Object.fromEntries(policy.resourcePolicy.rules.map((rule) => [rule.name, rule.actions]));
    expect(actions).toEqual({
      "read-only-tools": plain,
      "destructive-tools-for-users": ["delete_all"],
      "destructive-tools-for-agents": ["delete_all"],
    });
    expect(accessTable(policies)).toMatch(/^\* {2,}name is a pattern {2,}no {2,}no$/m);
    expect(accessTable(policies)).toMatch(/^read_\? {2,}name is a pattern {2,}no {2,}no$/m);

    // On a real PDP: a tool named "*" is nobody's, and it widens nothing.
    await using pdp = await startLocalPdp({ policyDir: folder });
    const user = createGuard({ client: pdp.client }).forUser({ id: "alice", roles: ["user"] });
    const agent = await user.delegate({ id: "helper", roles: ["agent"] });
    for (const name of ["*", "read_?", "{a,b}"]) {
      expect((await user.authorize({ server: "evil", tool: name })).allowed).toBe(false);
      expect((await agent.authorize({ server: "evil", tool: name })).allowed).toBe(false);
    }
    const destructive = await agent.authorize({ server: "evil", tool: "delete_all" });
    expect(destructive.allowed).toBe(true);
    expect(approvalRequest(destructive)?.reasons).toEqual([
      "delete_all may change or delete data: a person approves each call an agent makes",
    ]);
    expect((await agent.authorize({ server: "evil", tool: "it's" })).allowed).toBe(true);
    expect((await agent.authorize({ server: "evil", tool: "read_a" })).allowed).toBe(false);
  });

  test("--destructive users: destructive tools are the user's alone", async () => {
    const policies = starterPolicies({
      server: "notes",
      destructive: "users",
      listing: listing([tool("read_note"), tool("delete_note", {}), tool("fetch_page", { readOnlyHint: true })]),
    });
    const folder = join(temp, "users-only");
    await writePolicyFiles(folder, policies.files, false);
    expect((await cerbosCompile(folder)).status).toBe(0);
    const table = accessTable(policies);
    expect(table).toMatch(/^read_note +read-only +yes +yes$/m);
    expect(table).toMatch(/^delete_note +destructive, open-world +with role notes_open_world +no$/m);
    expect(table).toMatch(
      /^fetch_page +read-only, open-world +with role notes_open_world +with role notes_open_world$/m,
    );
  });

  test("a server's own name becomes a policy name without its mcp and server words; --server is checked", () => {
    expect(serverName(undefined, "secure-filesystem-server")).toBe("secure-filesystem");
    expect(serverName(undefined, "mcp-server-fetch")).toBe("fetch");
    expect(serverName(undefined, "Library MCP Server")).toBe("library");
    expect(serverName(undefined, "42 things")).toBe("things");
    expect(serverName(undefined, "mcp")).toBe("server");
    expect(serverName("files", "whatever")).toBe("files");
    for (const bad of ["a/b", "x::y", "1st", "", "a b"]) expect(() => serverName(bad, "x")).toThrow(/--server/);
  });
});

describe("lint's reading of policies", () => {
  test("actions match as Cerbos globs do: * and ? stop at ':', {a,b} and [..] work, other names are exact", () => {
    const cases: [string, string, boolean][] = [
      ["read_*", "read_file", true],
      ["read_*", "write_file", false],
      ["*", "anything:at:all", true],
      ["view:*", "view:all", true],
      ["view:*", "view:all:x", false],
      ["{read,write}_file", "write_file", true],
      ["read_?ile", "read_file", true],
      ["[rw]ead", "read", true],
      ["[!rw]ead", "read", false],
      ["read_fil", "read_file", false],
      ["read.file", "readxfile", false],
    ];
    for (const [pattern, action, matches] of cases) expect(actionMatches(pattern, action), pattern).toBe(matches);
  });

  test("resource, principal and role policies, several to a file; tests and testdata are not policies", async () => {
    const folder = join(temp, "lint-rules");
    mkdirSync(join(folder, "tests/testdata"), { recursive: true });
    writeFileSync(
      join(folder, "all.yaml"),
      `apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: "mcp::files"
  version: default
  rules:
    - name: reads
      actions: ["read_*", "lsit_dir"]
      effect: EFFECT_ALLOW
      roles: ["user"]
---
apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: ops
  version: default
  rules:
    - resource: "mcp::*"
      actions:
        - action: "delete_file"
          effect: EFFECT_ALLOW
---
apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: auditor
  rules:
    - resource: "mcp::files::prompt"
      allowActions: ["get"]
`,
    );
    const stray =
      'apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: "mcp::files"\n  rules:\n    - actions: ["*"]\n';
    writeFileSync(join(folder, "tests/files_test.yaml"), stray);
    writeFileSync(join(folder, "tests/testdata/resources.yaml"), stray);

    const rules = await readPolicyRules(folder);
    const coverage = policyCoverage(
      "files",
      listing([tool("read_file"), tool("list_dir"), tool("delete_file"), tool("write_file")], {
        resources: [{ uri: "file:///readme", name: "readme" }],
        prompts: [{ name: "summarize" }],
      }),
      rules,
    );

    expect(rules.map((rule) => [rule.file, rule.kind])).toEqual([
      ["all.yaml", "mcp::files"],
      ["all.yaml", "mcp::*"],
      ["all.yaml", "mcp::files::prompt"],
    ]);
    expect(coverage.uncovered).toEqual([
      { what: "tool", name: "list_dir" },
      { what: "tool", name: "write_file" },
      { what: "resource", name: "file:///readme" },
    ]);
    expect(coverage.unknown).toEqual([
      { file: "all.yaml", rule: "reads", kind: "mcp::files", action: "lsit_dir", suggestion: "list_dir" },
    ]);
    expect(coverage.noToolPolicy).toBe(false);
  });
});
