import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GRPC } from "@cerbos/grpc";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { guardMcpClient } from "../../src/adapters/mcp/index.ts";
import {
  approvalRequest,
  createGuard,
  type Delegation,
  type Guard,
  SpanAttributes,
  SpanNames,
} from "../../src/index.ts";
import { cerbosBinaryPath, startLocalPdp } from "../../src/local-pdp.ts";
import { unusedPort } from "../adapters/mcp/unused-port.ts";
import type { HttpMcp } from "../support/http-mcp.ts";
import { connectFilesystemServer, connectMemoryServer } from "../support/mcp.ts";
import { memoryTracing } from "../support/tracing.ts";
import { type BuiltCli, buildCli, type CliRun } from "./built-cli.ts";
import { libraryToken, startLibraryServer } from "./library-server.ts";

// Every command runs as a user runs it: the package's `bin` (dist/cli/main.js, built from src/ as `npm run build`
// does), a child process, its exit code and what it printed.
const root = fileURLToPath(new URL("../../", import.meta.url));
const serverEntry = (name: string) => join(root, `node_modules/@modelcontextprotocol/${name}/dist/index.js`);
const temp = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-cli-")));
const workspace = join(temp, "workspace");
const memoryFile = join(temp, "memory.jsonl");
const filesystemServer = ["--", process.execPath, serverEntry("server-filesystem"), workspace];
const memoryServer = ["--", process.execPath, serverEntry("server-memory")];
const memoryEnv = { MEMORY_FILE_PATH: memoryFile };

let cli: BuiltCli;
/** `hopguard init` of the real filesystem server, run once: its folder and what it printed. */
let filesystemInit: CliRun;
const filesystemPolicies = join(temp, "filesystem-policies");

beforeAll(async () => {
  mkdirSync(workspace);
  writeFileSync(join(workspace, "notes.md"), "hop by hop\n");
  cli = await buildCli();
  filesystemInit = await cli.run([
    "init",
    "--server",
    "filesystem",
    "--policies",
    filesystemPolicies,
    "--from-mcp",
    ...filesystemServer,
  ]);
}, 120_000);

afterAll(() => {
  cli?.remove();
  rmSync(temp, { recursive: true, force: true });
});

/** The table `hopguard init` prints: row name → its kind and who may call it. */
function accessRows(stdout: string): Map<string, { kind: string; user: string; agent: string }> {
  const lines = stdout.split("\n");
  const header = lines.findIndex((line) => /^what {2,}kind {2,}user {2,}agent acting for the user$/.test(line));
  expect(header).toBeGreaterThanOrEqual(0);
  const rows = new Map<string, { kind: string; user: string; agent: string }>();
  for (const line of lines.slice(header + 2)) {
    if (line.trim() === "") break;
    const [name = "", kind = "", user = "", agent = ""] = line.split(/ {2,}/);
    rows.set(name, { kind, user, agent });
  }
  return rows;
}

/** The same server's own tool list, read directly. */
async function listTools(connect: () => Promise<Client>): Promise<Tool[]> {
  const client = await connect();
  try {
    return (await client.listTools()).tools;
  } finally {
    await client.close();
  }
}

function compile(folder: string): { status: number | null; output: string } {
  const result = spawnSync(cerbosBinaryPath(), ["compile", "--color=never", folder], {
    env: { ...process.env, CERBOS_NO_TELEMETRY: "1" },
    encoding: "utf8",
  });
  return { status: result.status, output: result.stdout + result.stderr };
}

/**
 * Asks the PDP, for every tool row of the table, whether a user and an agent acting for them may call it: exactly
 * what the row says, approval and open-world role included.
 */
async function expectTableHolds(
  guard: Guard,
  server: string,
  tools: readonly Tool[],
  rows: ReadonlyMap<string, { user: string; agent: string }>,
): Promise<void> {
  const chains = async (roles: readonly string[]) => {
    const user = guard.forUser({ id: "alice", roles: ["user", ...roles] });
    return { user, agent: await user.delegate({ id: "helper", roles: ["agent", ...roles] }) };
  };
  const plain = await chains([]);
  for (const tool of tools) {
    const row = rows.get(tool.name);
    expect(row, tool.name).toBeDefined();
    for (const who of ["user", "agent"] as const) {
      const cell = row?.[who] ?? "";
      const role = / with role (\S+)$|^with role (\S+)$/.exec(cell);
      const roleName = role?.[1] ?? role?.[2];
      const withRole = roleName === undefined ? plain : await chains([roleName]);
      const call = { server, tool: tool.name, annotations: tool.annotations ?? {} };
      const granted = await withRole[who].authorize(call);
      expect(granted.allowed, `${who} ${tool.name}: ${granted.reason}`).toBe(cell !== "no");
      expect(approvalRequest(granted) !== undefined, `${who} ${tool.name} approval`).toBe(cell.includes("approval"));
      if (roleName !== undefined) {
        const without = await plain[who].authorize(call);
        expect(without.allowed, `${who} ${tool.name} without ${roleName}`).toBe(false);
      }
    }
  }
}

const text = (result: Awaited<ReturnType<Client["callTool"]>>): string =>
  (result.content as { type: string; text?: string }[]).map((part) => part.text ?? "").join("");

describe("hopguard init", () => {
  test("the built bin is an executable Node script", () => {
    expect(readFileSync(cli.bin, "utf8").split("\n")[0]).toBe("#!/usr/bin/env node");
    const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { bin: Record<string, string> };
    expect(manifest.bin).toEqual({ hopguard: "./dist/cli/main.js" });
  });

  test("server-filesystem: writes the starter set, its tests pass cerbos compile, and a table of every tool", async () => {
    const tools = await listTools(() => connectFilesystemServer([workspace]));
    const { code, stdout, stderr } = filesystemInit;

    expect(code, stderr).toBe(0);
    // Progress while it connects and lists, on stderr.
    expect(stderr).toContain(`… connecting to ${process.execPath} ${serverEntry("server-filesystem")} ${workspace}`);
    expect(stderr).toMatch(/✓ connected to secure-filesystem-server \S+/);
    expect(stderr).toContain(`✓ tools: ${tools.length}`);
    for (const file of [
      "derived_roles.yaml",
      "agent.yaml",
      "mcp_filesystem.yaml",
      "tests/agent_test.yaml",
      "tests/mcp_filesystem_test.yaml",
    ]) {
      expect(stdout).toMatch(new RegExp(`written +${file.replace(".", "\\.")}`));
      expect(existsSync(join(filesystemPolicies, file))).toBe(true);
    }
    // One allowed and one denied case per tool, and the delegation policy's five.
    expect(stdout).toContain(`${tools.length * 2 + 5} tests executed [${tools.length * 2 + 5} OK]`);
    const again = compile(filesystemPolicies);
    expect(again.status, again.output).toBe(0);

    const rows = accessRows(stdout);
    expect([...rows.keys()].sort()).toEqual(tools.map((tool) => tool.name).sort());
    expect(rows.get("read_text_file")).toEqual({ kind: "read-only", user: "yes", agent: "yes" });
    expect(rows.get("create_directory")).toEqual({ kind: "additive", user: "yes", agent: "yes" });
    expect(rows.get("write_file")).toEqual({ kind: "destructive", user: "yes", agent: "with approval" });
    expect(rows.get("move_file")).toEqual({ kind: "destructive", user: "yes", agent: "with approval" });
  });

  test("server-filesystem: a guarded agent behaves as the table says — reads run, writes wait for a person", async () => {
    const rows = accessRows(filesystemInit.stdout);
    const tools = await listTools(() => connectFilesystemServer([workspace]));
    await using pdp = await startLocalPdp({ policyDir: filesystemPolicies });
    const tracing = memoryTracing();
    const guard = createGuard({ client: pdp.client, tracer: tracing.tracer });
    await expectTableHolds(guard, "filesystem", tools, rows);

    const helper = await guard.forUser({ id: "alice", roles: ["user"] }).delegate({ id: "helper", roles: ["agent"] });
    const client = await connectFilesystemServer([workspace]);
    try {
      let approve = false;
      const filesystem = guardMcpClient(client, { server: "filesystem", delegation: helper, approve: () => approve });

      const read = await filesystem.callTool({
        name: "read_text_file",
        arguments: { path: join(workspace, "notes.md") },
      });
      expect(read.isError).toBeFalsy();
      expect(text(read)).toContain("hop by hop");

      const folder = join(workspace, "drafts");
      const created = await filesystem.callTool({ name: "create_directory", arguments: { path: folder } });
      expect(created.isError).toBeFalsy();
      expect(statSync(folder).isDirectory()).toBe(true);

      const path = join(workspace, "drafts", "plan.md");
      tracing.reset();
      const refused = await filesystem.callTool({ name: "write_file", arguments: { path, content: "plan" } });
      expect(refused.isError).toBe(true);
      expect(existsSync(path)).toBe(false);
      const declined = tracing.spans().filter((span) => span.name === SpanNames.approval);
      expect(declined.map((span) => span.attributes[SpanAttributes.approval])).toEqual(["declined"]);

      approve = true;
      const written = await filesystem.callTool({ name: "write_file", arguments: { path, content: "plan" } });
      expect(written.isError).toBeFalsy();
      expect(readFileSync(path, "utf8")).toBe("plan");
    } finally {
      await client.close();
    }
  });

  test("server-memory: tools, its resource, and an agent that records but may not forget", async () => {
    const policies = join(temp, "memory-policies");
    const tools = await listTools(() => connectMemoryServer(memoryFile));
    const { code, stdout, stderr } = await cli.run(
      ["init", "--server", "memory", "--policies", policies, "--from-mcp", ...memoryServer],
      { env: memoryEnv },
    );

    expect(code, stderr).toBe(0);
    expect(stderr).toContain("✓ resources: 1");
    expect(stdout).toMatch(/written +mcp_memory_resource\.yaml/);
    // Two cases per tool and per resource, and the delegation policy's five.
    expect(stdout).toContain(`${tools.length * 2 + 2 + 5} tests executed [${tools.length * 2 + 2 + 5} OK]`);
    const rows = accessRows(stdout);
    expect(rows.get("read_graph")).toEqual({ kind: "read-only", user: "yes", agent: "yes" });
    expect(rows.get("create_entities")).toEqual({ kind: "additive", user: "yes", agent: "yes" });
    expect(rows.get("delete_entities")).toEqual({ kind: "destructive", user: "yes", agent: "with approval" });
    expect(rows.get("memory://knowledge-graph")).toEqual({ kind: "resource", user: "yes", agent: "yes" });

    await using pdp = await startLocalPdp({ policyDir: policies });
    const guard = createGuard({ client: pdp.client });
    await expectTableHolds(guard, "memory", tools, rows);
    const helper = await guard.forUser({ id: "alice", roles: ["user"] }).delegate({ id: "helper", roles: ["agent"] });
    const client = await connectMemoryServer(memoryFile);
    try {
      const memory = guardMcpClient(client, { server: "memory", delegation: helper });
      const entity = { name: "hopguard", entityType: "project", observations: ["checks every hop"] };
      expect(
        (await memory.callTool({ name: "create_entities", arguments: { entities: [entity] } })).isError,
      ).toBeFalsy();
      const deleted = await memory.callTool({ name: "delete_entities", arguments: { entityNames: ["hopguard"] } });
      expect(deleted.isError).toBe(true);
      expect(text(await memory.callTool({ name: "read_graph", arguments: {} }))).toContain("checks every hop");
      expect(readFileSync(memoryFile, "utf8")).toContain('"name":"hopguard"');
    } finally {
      await client.close();
    }
  });

  test("Streamable HTTP with a bearer token: open-world tools behind their own role, resources, templates, prompts", async () => {
    const library = await startLibraryServer();
    const policies = join(temp, "library-policies");
    try {
      const refused = await cli.run(["init", "--policies", policies, "--from-mcp-url", library.url.href]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`hopguard: ${library.url.href} refused the connection (HTTP 401)`);
      expect(existsSync(policies)).toBe(false);

      const { code, stdout, stderr } = await cli.run(
        ["init", "--policies", policies, "--from-mcp-url", library.url.href],
        { env: { HOPGUARD_BEARER_TOKEN: libraryToken } },
      );
      expect(code, stderr).toBe(0);
      // No --server: the name comes from the server's own, less its "mcp" and "server" words.
      expect(stdout).toContain('Starter policies for the MCP server "library" (resource kind mcp::library)');
      expect(stdout).toContain("19 tests executed [19 OK]");
      const rows = accessRows(stdout);
      expect(Object.fromEntries(rows)).toEqual({
        find_book: { kind: "read-only", user: "yes", agent: "yes" },
        search_catalogues: {
          kind: "read-only, open-world",
          user: "with role library_open_world",
          agent: "with role library_open_world",
        },
        order_book: {
          kind: "destructive, open-world",
          user: "with role library_open_world",
          agent: "with approval, with role library_open_world",
        },
        renew_loan: {
          kind: "destructive, open-world",
          user: "with role library_open_world",
          agent: "with approval, with role library_open_world",
        },
        "library://hours": { kind: "resource", user: "yes", agent: "yes" },
        "library://shelves/{shelf}": { kind: "resource template", user: "yes", agent: "yes" },
        recommend: { kind: "prompt", user: "yes", agent: "yes" },
      });
      expect(stdout).toContain("No annotations on renew_loan: taken as destructive and open-world, as MCP says.");

      await using pdp = await startLocalPdp({ policyDir: policies });
      const tools = await listLibraryTools(library);
      await expectTableHolds(createGuard({ client: pdp.client }), "library", tools, rows);
    } finally {
      await library.close();
    }
  });

  test("never overwrites a file without --force; unchanged files are left as they are", async () => {
    const policies = join(temp, "overwrite-policies");
    const init = (...extra: string[]) =>
      cli.run(
        ["init", "--quiet", "--server", "memory", "--policies", policies, ...extra, "--from-mcp", ...memoryServer],
        {
          env: memoryEnv,
        },
      );
    expect((await init()).code).toBe(0);
    const same = await init();
    expect(same.code).toBe(0);
    expect(same.stdout).toMatch(/unchanged +mcp_memory\.yaml/);
    expect(same.stdout).not.toMatch(/written/);

    const edited = join(policies, "mcp_memory.yaml");
    writeFileSync(edited, `${readFileSync(edited, "utf8")}# my own rule\n`);
    rmSync(join(policies, "agent.yaml"));
    const clash = await init();
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain("already has mcp_memory.yaml with other contents; nothing was written");
    expect(clash.stderr).toContain("--force");
    expect(readFileSync(edited, "utf8")).toContain("# my own rule");
    expect(existsSync(join(policies, "agent.yaml"))).toBe(false);

    const forced = await init("--force");
    expect(forced.code).toBe(0);
    expect(forced.stdout).toMatch(/overwritten +mcp_memory\.yaml/);
    expect(forced.stdout).toMatch(/written +agent\.yaml/);
    expect(readFileSync(edited, "utf8")).not.toContain("# my own rule");
  });

  test("policies that do not compile with the starter set: exit code 1 and Cerbos's own words", async () => {
    const policies = join(temp, "broken-policies");
    mkdirSync(policies);
    writeFileSync(join(policies, "mine.yaml"), "apiVersion: api.cerbos.dev/v1\nresourcePolicy: [\n");

    const { code, stdout, stderr } = await cli.run(
      ["init", "--quiet", "--server", "memory", "--policies", policies, "--from-mcp", ...memoryServer],
      { env: memoryEnv },
    );

    expect(code).toBe(1);
    expect(stderr).toContain(`hopguard: cerbos compile ${policies}: a policy does not compile`);
    expect(stdout).toMatch(/mine\.yaml:2:\d+/);
    expect(existsSync(join(policies, "mcp_memory.yaml"))).toBe(true);
  });

  test("a server that cannot be reached, started or listed is a clear error, and nothing is written", async () => {
    const policies = join(temp, "never-written");
    const port = await unusedPort();
    const cases: [string[], RegExp][] = [
      [
        ["--from-mcp-url", `http://127.0.0.1:${port}/mcp`],
        new RegExp(`cannot reach the MCP server at http://127\\.0\\.0\\.1:${port}/mcp: ECONNREFUSED`),
      ],
      [
        ["--from-mcp", "--", join(temp, "no-such-server")],
        /cannot start the MCP server: ".*no-such-server" was not found/,
      ],
      [
        ["--from-mcp", "--", process.execPath, "-e", "console.error('missing API key'); process.exit(3)"],
        /exited before it answered\nthe server said:\nmissing API key/,
      ],
      [
        ["--from-mcp", "--", process.execPath, join(root, "test/cli/empty-server.ts")],
        /lists no tools, resources or prompts: there is nothing to write policies for/,
      ],
      [["--from-mcp"], /--from-mcp needs the server's command after --/],
      [[], /say where the MCP server is/],
    ];
    for (const [source, message] of cases) {
      const { code, stderr } = await cli.run(["init", "--policies", policies, ...source]);
      expect(code, stderr).toBe(2);
      expect(stderr).toMatch(message);
    }
    expect(existsSync(policies)).toBe(false);
  });
});

async function listLibraryTools(library: HttpMcp): Promise<Tool[]> {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StreamableHTTPClientTransport } = await import("@modelcontextprotocol/sdk/client/streamableHttp.js");
  return listTools(async () => {
    const client = new Client({ name: "hopguard-test", version: "0" });
    await client.connect(
      new StreamableHTTPClientTransport(library.url, {
        requestInit: { headers: { Authorization: `Bearer ${libraryToken}` } },
      }),
    );
    return client;
  });
}

describe("hopguard check", () => {
  // hopguard's own policies/: alice in engineering, a planner agent that may read her workspace but not write.
  const alice = 'alice:user:{"department":"engineering","workspace":"/workspace/alice"}';
  const read = ["filesystem/read_text_file", '{"path":"/workspace/alice/notes.md"}'];
  const write = ["filesystem/write_file", '{"path":"/workspace/alice/plan.md","content":"x"}'];

  test("allowed: exit code 0 and the per-hop tree, with the matched policy of each hop", async () => {
    const { code, stdout, stderr } = await cli.run([
      "check",
      "--policies",
      "policies",
      "--user",
      alice,
      "--agent",
      "planner:agent,planner",
      ...read,
    ]);

    expect(code, stderr).toBe(0);
    expect(stdout).toContain("⇒ delegation alice ⇒ planner: allowed");
    expect(stdout).toMatch(/^ALLOW filesystem\/read_text_file {2}allowed: every hop of alice → planner/m);
    expect(stdout).toMatch(/^ {2}├─ allow {2}alice \(user\) +resource\.mcp::filesystem\.vdefault/m);
    expect(stdout).toMatch(/^ {2}└─ allow {2}planner \(agent\) +resource\.mcp::filesystem\.vdefault/m);
  });

  test("denied: exit code 1, the reason, and the hop that denied", async () => {
    const { code, stdout } = await cli.run([
      "check",
      "--policies",
      "policies",
      "--user",
      alice,
      "--agent",
      "planner:agent,planner",
      ...write,
    ]);

    expect(code).toBe(1);
    expect(stdout).toMatch(
      /^DENY {2}filesystem\/write_file {2}denied by agent "planner" \(hop 1 of alice → planner\)/m,
    );
    expect(stdout).toMatch(/^ {2}├─ allow {2}alice \(user\) +resource\.mcp::filesystem\.vdefault/m);
    expect(stdout).toMatch(/^ {2}└─ deny {3}planner \(agent\) +resource\.mcp::filesystem\.vdefault .*← denied here$/m);
  });

  test("--json prints the Decision; --pdp asks a running PDP instead of starting one", async () => {
    const { code, stdout } = await cli.run([
      "check",
      "--pdp",
      inject("pdpGrpcAddress"),
      "--json",
      "--user",
      alice,
      "--agent",
      "planner:agent,planner",
      ...write,
    ]);

    expect(code).toBe(1);
    const decision = JSON.parse(stdout);
    expect(decision).toMatchObject({
      allowed: false,
      chain: ["alice", "planner"],
      deniedBy: "planner",
      subject: {
        type: "tool",
        server: "filesystem",
        tool: "write_file",
        arguments: { path: "/workspace/alice/plan.md" },
      },
    });
    expect(decision.hops.map((hop: { effect: string }) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_DENY"]);
  });

  test("an allowed call that needs a person's approval says so, and still exits 0", async () => {
    const { code, stdout } = await cli.run([
      "check",
      "--policies",
      "policies",
      "--user",
      alice,
      "filesystem/move_file",
      '{"source":"/workspace/alice/a.md","destination":"/workspace/alice/b.md"}',
    ]);

    expect(code).toBe(0);
    expect(stdout).toMatch(/^ALLOW filesystem\/move_file/m);
    expect(stdout).toContain(
      "… and a rule asks a person to approve it first: moving files changes what others rely on",
    );
  });

  test("a refused delegation is a deny: exit code 1 and the delegation's own tree", async () => {
    const { code, stdout } = await cli.run([
      "check",
      "--policies",
      "policies",
      "--user",
      alice,
      "--agent",
      "planner-x:agent,planner",
      "--agent",
      "planner-y:agent,planner",
      ...read,
    ]);

    expect(code).toBe(1);
    expect(stdout).toContain("⇒ delegation alice → planner-x ⇒ planner-y: REFUSED");
    expect(stdout).toMatch(/^DENY {2}delegate to planner-y {2}denied by agent "planner-x"/m);
    expect(stdout).toMatch(/└─ deny {3}planner-x \(agent\) +resource\.agent\.vdefault .*← denied here$/m);
  });

  test("input it cannot use is exit code 2 with the reason, before any PDP is asked", async () => {
    const cases: [string[], RegExp][] = [
      [["--user", "alice", ...read], /--user "alice": expected id:roles\[:json\]/],
      [["--user", "alice:user", "read_text_file"], /name the call as <server>\/<tool>/],
      [["--user", "alice:user", "filesystem/read_text_file", "[1]"], /arguments: expected a JSON object/],
      [["--user", "alice:user", "--agent", 'helper:agent:{"tools":', ...read], /--agent: not JSON/],
    ];
    for (const [args, message] of cases) {
      const { code, stderr } = await cli.run(["check", "--pdp", inject("pdpGrpcAddress"), ...args]);
      expect(code, stderr).toBe(2);
      expect(stderr).toMatch(message);
    }
  });
});

describe("hopguard pdp", () => {
  test("starts, answers, reloads a changed policy, keeps the last good one, and stops on SIGINT", async () => {
    const policies = join(temp, "pdp-policies");
    cpSync(filesystemPolicies, policies, { recursive: true });
    const pdp = cli.start(["pdp", "--policies", policies]);
    let client: GRPC | undefined;
    try {
      const [, grpc = "", http = "", pid = ""] = await pdp.waitFor(
        /gRPC {2}(\S+)\n {2}HTTP {2}(\S+)\n {2}pid {3}(\d+)/,
      );
      expect((await fetch(`${http}/_cerbos/health`)).ok).toBe(true);
      client = new GRPC(grpc, { tls: false });
      const guard = createGuard({ client, timeoutMs: 5000 });
      const helper = await guard.forUser({ id: "alice", roles: ["user"] }).delegate({ id: "helper", roles: ["agent"] });
      const allowed = (agent: Delegation, tool: string) =>
        agent.authorize({ server: "filesystem", tool }).then((decision) => decision.allowed);
      expect(await allowed(helper, "read_text_file")).toBe(true);

      const policy = join(policies, "mcp_filesystem.yaml");
      writeFileSync(policy, readFileSync(policy, "utf8").replace(/^ +- "read_text_file".*\n/m, ""));
      await pdp.waitFor(/changed: mcp_filesystem\.yaml — the policies compile; the PDP reloads them/);
      await eventually(async () => expect(await allowed(helper, "read_text_file")).toBe(false));
      expect(await allowed(helper, "read_file")).toBe(true);

      writeFileSync(join(policies, "broken.yaml"), "apiVersion: api.cerbos.dev/v1\nresourcePolicy: [\n");
      await pdp.waitFor(/changed: broken\.yaml — a policy does not compile; the PDP keeps the policies it had/);
      expect(await allowed(helper, "read_file")).toBe(true);
      expect(await allowed(helper, "read_text_file")).toBe(false);

      process.kill(pdp.pid, "SIGINT");
      expect(await pdp.exited).toEqual({ code: 0, signal: null });
      expect(pdp.stdout()).toContain(`SIGINT: the PDP (pid ${pid}) stopped`);
      expect(isRunning(Number(pid))).toBe(false);
    } finally {
      client?.close();
      if (isRunning(pdp.pid)) process.kill(pdp.pid, "SIGKILL");
    }
  }, 60_000);
});

describe("hopguard pdp, when its PDP dies", () => {
  test("the command ends with exit code 2 rather than serve nothing", async () => {
    const pdp = cli.start(["pdp", "--policies", filesystemPolicies]);
    try {
      const [, pid = ""] = await pdp.waitFor(/pid {3}(\d+)/);
      process.kill(Number(pid), "SIGKILL");
      expect((await pdp.exited).code).toBe(2);
      expect(pdp.stderr()).toContain(`hopguard: the PDP (pid ${pid}) exited on its own`);
    } finally {
      if (isRunning(pdp.pid)) process.kill(pdp.pid, "SIGKILL");
    }
  });
});

describe("hopguard lint", () => {
  const lint = (policies: string, ...extra: string[]) =>
    cli.run([
      "lint",
      "--quiet",
      "--policies",
      policies,
      "--server",
      "filesystem",
      ...extra,
      "--from-mcp",
      ...filesystemServer,
    ]);

  test("the starter set covers every tool of its server: no findings, exit code 0", async () => {
    const { code, stdout } = await lint(filesystemPolicies);
    expect(code).toBe(0);
    expect(stdout).toContain(
      "No findings: every tool, resource and prompt of filesystem is covered, and every rule names one.",
    );
  });

  test("finds a planted typo (with the tool it meant) and the tools no rule covers: exit code 1", async () => {
    const policies = join(temp, "lint-policies");
    cpSync(filesystemPolicies, policies, { recursive: true });
    const policy = join(policies, "mcp_filesystem.yaml");
    writeFileSync(
      policy,
      readFileSync(policy, "utf8")
        .replace('- "read_text_file"', '- "read_text_flie"')
        .replace(/^ +- "get_file_info".*\n/m, ""),
    );

    const { code, stdout } = await lint(policies);

    expect(code).toBe(1);
    expect(stdout).toMatch(/^ {2}tool {2}read_text_file$/m);
    expect(stdout).toMatch(/^ {2}tool {2}get_file_info$/m);
    expect(stdout).toMatch(/^ {2}mcp_filesystem\.yaml {2}read-only-tools {2}read_text_flie {2}read_text_file$/m);
    expect(stdout).toContain("3 findings.");
  });

  test("a resource no policy covers, on server-memory", async () => {
    const policies = join(temp, "lint-memory-policies");
    const init = await cli.run(
      ["init", "--quiet", "--server", "memory", "--policies", policies, "--from-mcp", ...memoryServer],
      { env: memoryEnv },
    );
    expect(init.code, init.stderr).toBe(0);
    rmSync(join(policies, "mcp_memory_resource.yaml"));

    const { code, stdout } = await cli.run(
      ["lint", "--quiet", "--policies", policies, "--server", "memory", "--from-mcp", ...memoryServer],
      { env: memoryEnv },
    );

    expect(code).toBe(1);
    expect(stdout).toMatch(/^ {2}resource {2}memory:\/\/knowledge-graph$/m);
    expect(stdout).toContain("1 finding.");
  });
});

/** Retries `check` until it passes: Cerbos reloads a changed folder on its own schedule. */
async function eventually(check: () => Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((settle) => setTimeout(settle, 100));
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
