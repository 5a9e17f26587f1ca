import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";

// The demo and the examples run exactly as a user runs them: `node examples/<file>.ts`, importing the built package
// through its exports map ("hopguard", "hopguard/langchain", ...). So build first, as `npm run demo` does.
const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const node = (script: string, ...args: string[]) =>
  run(process.execPath, [script, ...args], { cwd: root, timeout: 90_000 });

beforeAll(async () => {
  await run(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { cwd: root });
}, 120_000);

describe("npm run demo", () => {
  const output = mkdtempSync(join(tmpdir(), "hopguard-demo-test-"));
  afterAll(() => rmSync(output, { recursive: true, force: true }));

  test("shows allowed, denied-by-hop, denied-by-scope and approval-required calls across both frameworks", async () => {
    const { stdout } = await node("examples/demo.ts", join(output, "trace.otlp.json"));

    expect(stdout).toMatch(/ALLOW memory\/read_graph {2}allowed: every hop of alice → planner/);
    expect(stdout).toMatch(/DENY {2}filesystem\/write_file {2}denied by agent "planner" \(hop 1 of alice → planner\)/);
    expect(stdout).toContain("delegation alice → planner ⇒ researcher: allowed");
    expect(stdout).toMatch(/ALLOW filesystem\/read_text_file {2}allowed: every hop of alice → planner → researcher/);
    expect(stdout).toMatch(/DENY {2}filesystem\/read_text_file {2}denied by user "alice" \(hop 0/);
    // What the denial hinged on: the path, outside the workspace of the user the chain acts for.
    expect(stdout).toMatch(
      /\n {4}arguments: \{"path":"[^"]*\/bob\/salaries\.csv"\}\n {4}why: \S*\/bob\/salaries\.csv is outside alice's workspace \S*\/alice: /,
    );
    // Each listing shows once, and no decision is shown twice or guessed at.
    expect(stdout.match(/alice → planner could call 13 of 23 tools/g)).toHaveLength(1);
    expect(stdout).not.toContain("e.g.");
    expect(stdout).not.toContain("asked again");
    expect(stdout).toMatch(
      /DENY {2}memory\/create_entities {2}denied by agent "planner" \(hop 1 of alice → planner → researcher\)/,
    );
    expect(stdout).toMatch(/DENY {2}filesystem\/write_file {2}denied by scope/);
    expect(stdout).toContain("plan.md written by the planner? no — denied");
    expect(stdout).toMatch(/planner-x ⇒ planner-y: REFUSED: denied by agent "planner-x"/);
    expect(stdout).toMatch(/⇒ sub-helper: REFUSED: .*not within \[filesystem\/read_\*\]/);
    expect(stdout).toContain("LangChain run paused for approval");
    expect(stdout).toContain("s1: approved by carol@acme.example — recorded on its hopguard.approval span");
    expect(stdout).toContain("briefing.md published? yes");
    expect(stdout).toContain(
      "AI SDK run stopped with a tool-approval request: moving files changes what others rely on",
    );
    expect(stdout).toContain("archive.md archived? yes");
    // Zero trust: the client guard (the agent host's PDP) allows the scribe's write; the MCP server, on its own PDP
    // with a stricter copy of the policies, re-checks every hop from the delegation token and refuses it.
    expect(stdout).toMatch(
      /\[alice → scribe\] call \w+\n {4}ALLOW filesystem\/write_file {2}allowed: every hop of alice → scribe/,
    );
    expect(stdout).toMatch(
      /\[alice → scribe\] call \w+ — on the filesystem MCP server\n {4}DENY {2}filesystem\/write_file {2}denied by agent "scribe" \(hop 1 of alice → scribe\)/,
    );
    expect(stdout).toContain(
      'write_file: allowed by the client guard → refused by the server guard: denied by agent "scribe" (hop 1 of alice → scribe)',
    );
    expect(stdout).toContain("report.md written by the scribe? no — refused");
    // Every folder the demo made (the workspace, the server's policies) is gone once it exits.
    const workspace = /served by the real MCP filesystem server: (\S+)/.exec(stdout)?.[1] ?? "";
    expect(workspace).toMatch(/hopguard-demo-/);
    expect(existsSync(dirname(workspace))).toBe(false);

    const traceFile = /spans written as OTLP-JSON: (\S+)/.exec(stdout)?.[1] ?? "";
    expect(traceFile).toBe(join(output, "trace.otlp.json"));
    expect(existsSync(traceFile)).toBe(true);
    type Attributes = { key: string; value: { stringValue?: string } }[];
    const trace = JSON.parse(readFileSync(traceFile, "utf8")) as {
      resourceSpans: {
        resource: { attributes: Attributes };
        scopeSpans: {
          scope: { name: string };
          spans: { name: string; traceId: string; parentSpanId?: string; attributes: Attributes }[];
        }[];
      }[];
    };
    const scopes = trace.resourceSpans.flatMap((resource) => resource.scopeSpans);
    const spans = scopes.flatMap((scope) => scope.spans);
    const names = new Set(spans.map((span) => span.name));
    const scenarios = [
      "demo: 1. alice → planner (LangChain) → researcher (AI SDK)",
      "demo: 2. Delegation is authorized too, and scope only narrows",
      "demo: 3. A rule asks for a person: approvals in both frameworks",
      "demo: 4. Zero trust: the MCP server decides again, on its own PDP",
    ];
    expect(names).toEqual(
      new Set(["hopguard.authorize", "hopguard.delegate", "hopguard.list_tools", "hopguard.approval", ...scenarios]),
    );
    // One trace per scenario, each under its one root span; the MCP server's spans join the scenario that called it.
    const roots = spans.filter((span) => span.parentSpanId === undefined || span.parentSpanId === "");
    expect(roots.map((span) => span.name)).toEqual(scenarios);
    expect(new Set(spans.map((span) => span.traceId))).toEqual(new Set(roots.map((span) => span.traceId)));
    // Each service under its own service.name.
    const services = trace.resourceSpans.map(
      (resource) => resource.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue,
    );
    expect(services.sort()).toEqual(["filesystem-mcp-server", "hopguard-demo-agent-host"]);
    // The demo approves a move: the person's answer is on record, not only the policy's "approval required".
    const approval = spans.find((span) => span.name === "hopguard.approval");
    expect(approval?.attributes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: "hopguard.approval", value: { stringValue: "approved" } }),
      ]),
    );
    const authorize = spans.find((span) => span.name === "hopguard.authorize");
    expect(authorize?.attributes.map((attribute) => attribute.key)).toEqual(
      expect.arrayContaining(["hopguard.chain", "gen_ai.tool.name", "hopguard.decision", "hopguard.hop.effects"]),
    );
    // The MCP server's guard records its own spans (same names) under its own tracer: the write, decided on both sides.
    const writeDecisions = (scopeName: string) =>
      scopes
        .filter((scope) => scope.scope.name === scopeName)
        .flatMap((scope) => scope.spans)
        .filter((span) => span.name === "hopguard.authorize")
        .filter((span) =>
          span.attributes.some((a) => a.key === "gen_ai.tool.name" && a.value.stringValue === "write_file"),
        )
        .map((span) =>
          Object.fromEntries(
            span.attributes
              .filter((a) => a.key === "hopguard.decision" || a.key === "hopguard.denied_by")
              .map((a) => [a.key, a.value.stringValue]),
          ),
        );
    expect(writeDecisions("the filesystem MCP server")).toEqual([
      { "hopguard.decision": "deny", "hopguard.denied_by": "scribe" },
    ]);
    // The demo's own guard: the planner's write (section 1, denied by the planner), then the scribe's (allowed).
    expect(writeDecisions("hopguard-demo").at(-1)).toEqual({ "hopguard.decision": "allow" });
  });
});

describe("examples", () => {
  test("mcp-client.ts: the researcher sees read tools only, reads, and is refused a write", async () => {
    const { stdout } = await node("examples/mcp-client.ts");
    expect(stdout).toMatch(/researcher sees \d+ tools: .*read_text_file/);
    expect(stdout).not.toMatch(/sees .*write_file/);
    expect(stdout).toContain('read_text_file → [{"type":"text","text":"Launch moved to Thursday.\\n"}]');
    expect(stdout).toMatch(/write_file → isError=true .*denied by agent \\"planner\\"/);
  });

  test("langchain.ts: the step waits for the move's approval, as with humanInTheLoopMiddleware, then both run", async () => {
    const { stdout } = await node("examples/langchain.ts");
    expect(stdout.split("\n").slice(0, 2)).toEqual([
      // One interrupt per model step: nothing of the step runs before the person answers.
      "paused for approval: true; written so far: nothing",
      "approved; written: summary.md, final.md; agent says: Summary written and briefing published.",
    ]);
  });

  test("ai-sdk.ts: the read returns the file, the write is denied and the notes are untouched", async () => {
    const { stdout } = await node("examples/ai-sdk.ts");
    expect(stdout).toContain("read_text_file → ");
    expect(stdout).toMatch(/write_file → denied: hopguard refused filesystem\/write_file: denied by agent "planner"/);
    expect(stdout).toContain("notes.md untouched: true");
  });
});
