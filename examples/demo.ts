// The main job, offline in seconds: on a real Cerbos PDP started from npm, alice asks a planner agent (LangChain
// createAgent) for a briefing; the planner hands research to a researcher sub-agent (Vercel AI SDK). Both work with
// the real filesystem and memory MCP servers from npm, driven by scripted models. Then a guarded MCP server of another
// service, on a PDP of its own, refuses a call the client allowed. Every tool call is authorized for every hop of the
// chain and printed as a per-hop tree, straight from its OpenTelemetry span; the trace is written as an OTLP-JSON file
// at the end (to the path given, else to hopguard-demo.otlp.json in the temp folder): one trace per scenario, each
// under a root span, with the agent host and the MCP server as services of their own.
//   npm install && npm run demo [-- trace.otlp.json]
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMCPClient } from "@ai-sdk/mcp";
import { StdioMCPTransport } from "@ai-sdk/mcp/mcp-stdio";
import type { ClientTool } from "@langchain/core/tools";
import { Command, MemorySaver } from "@langchain/langgraph";
import { MultiServerMCPClient } from "@langchain/mcp-adapters";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { generateText, type ModelMessage, stepCountIs } from "ai";
import { createGuard, createTokenSigner, createTokenVerifier } from "hopguard";
import { callableToolSet, guardTools, hopguardToolApproval } from "hopguard/ai";
import { agentTool, hopguardMiddleware } from "hopguard/langchain";
import { startLocalPdp } from "hopguard/local-pdp";
import { delegationTokenTransport, guardMcpClient, guardMcpServer, type McpRefusal } from "hopguard/mcp";
import { generateKeyPair } from "jose";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { z } from "zod";
import { DecisionPrinter } from "./support/decision-printer.ts";
import { serveOverHttp } from "./support/http-mcp-server.ts";
import { mcpServers } from "./support/mcp-servers.ts";
import { scriptedModel } from "./support/scripted-model.ts";
import { stricterPolicies } from "./support/server-policies.ts";
import { traceToFile } from "./support/trace-file.ts";

const scratch = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-demo-")));
const workspace = join(scratch, "alice");
mkdirSync(workspace);
writeFileSync(
  join(workspace, "notes.md"),
  "Launch moved to Thursday. Risks: the payment provider's sandbox is flaky.\n",
);
writeFileSync(join(workspace, "draft.md"), "Briefing draft\n");
const file = (name: string) => join(workspace, name);

const printer = new DecisionPrinter();
const tracing = traceToFile(printer);
const started = performance.now();
const pdp = await startLocalPdp();
console.log(`Cerbos PDP (from npm) healthy at ${pdp.grpcAddress} in ${(performance.now() - started).toFixed(0)} ms`);
console.log(`alice's workspace, served by the real MCP filesystem server: ${workspace}`);

// LangChain loads both servers' tools with server-prefixed names; the AI SDK gets its own clients.
const langchainMcp = new MultiServerMCPClient({
  prefixToolNameWithServerName: true,
  mcpServers: {
    filesystem: { transport: "stdio", ...mcpServers.filesystem(workspace), stderr: "ignore" },
    memory: { transport: "stdio", ...mcpServers.memory(join(scratch, "memory.jsonl")), stderr: "ignore" },
  },
});
const aiFilesystem = await createMCPClient({
  transport: new StdioMCPTransport({ ...mcpServers.filesystem(workspace), stderr: "ignore" }),
});
const aiMemory = await createMCPClient({
  transport: new StdioMCPTransport({ ...mcpServers.memory(join(scratch, "memory.jsonl")), stderr: "ignore" }),
});
// What the sections start along the way, stopped at the end with the rest.
const stops: (() => Promise<unknown>)[] = [];

try {
  const guard = createGuard({ client: pdp.client, tracer: tracing.tracer });
  const alice = guard.forUser({
    id: "alice",
    roles: ["user"],
    attr: { department: "engineering", workspace, tenant: "acme" },
  });
  const memoryTools = await aiMemory.tools();
  const aiTools = {
    ...guardTools(await aiFilesystem.tools(), { server: "filesystem" }),
    ...guardTools(memoryTools, { server: "memory" }),
  };
  // One tool set, two servers: name each tool's server for the helpers that take the merged set.
  const serverOf = (tool: string) => ({ server: Object.hasOwn(memoryTools, tool) ? "memory" : "filesystem", tool });

  await scenario("1. alice → planner (LangChain) → researcher (AI SDK)", async () => {
    // The researcher: an AI SDK agent. It runs inside the planner's `research` tool, under the extended chain.
    const salaries = join(scratch, "bob", "salaries.csv");
    const researcherCalls = [
      { id: "r1", tool: "read_text_file", input: { path: file("notes.md") } },
      { id: "r2", tool: "read_text_file", input: { path: salaries } },
      {
        id: "r3",
        tool: "create_entities",
        input: { entities: [{ name: "launch", entityType: "event", observations: ["Thursday"] }] },
      },
      { id: "r4", tool: "write_file", input: { path: file("notes.md"), content: "overwritten" } },
    ];
    for (const { id, input } of researcherCalls) printer.note(id, { arguments: input });
    printer.note("r2", {
      arguments: { path: salaries },
      why: `${salaries} is outside alice's workspace ${workspace}: mcp::filesystem lets a chain read only inside the workspace of the user it acts for`,
    });
    const researcherModel = scriptedModel(
      { calls: researcherCalls },
      { text: "Launch is on Thursday; the payment sandbox is the main risk." },
    );
    const research = agentTool(
      async ({ task, delegation }) => {
        // An app would hand the model only `callable`. The demo hands it every tool, to show guardTools refusing at call
        // time whichever hop — or the scope — says no.
        const callable = await callableToolSet(aiTools, { resolveTool: serverOf, delegation });
        console.log(`  · so its model could be given just: ${Object.keys(callable).join(", ")}`);
        const { text } = await generateText({
          model: researcherModel,
          tools: aiTools,
          prompt: task,
          stopWhen: stepCountIs(3),
        });
        return text;
      },
      {
        name: "research",
        description: "Reads alice's workspace and memory, and reports what it found",
        agent: {
          id: "researcher",
          roles: ["agent", "researcher"],
          scope: { tools: ["filesystem/read_*", "filesystem/list_*", "memory/*"] },
        },
      },
    );

    const plan = { path: file("plan.md"), content: "plan" };
    printer.note("p2", {
      arguments: plan,
      why: "mcp::filesystem lets an agent write only with the writer role, and the planner has none",
    });
    const plannerTools: ClientTool[] = [...(await langchainMcp.getTools()), research];
    const planner = createAgent({
      model: fakeModel()
        .respondWithTools([
          { name: "memory__read_graph", args: {}, id: "p1" },
          { name: "filesystem__write_file", args: plan, id: "p2" },
        ])
        .respondWithTools([{ name: "research", args: { task: "What changed about the launch?" }, id: "p3" }])
        .respond(new AIMessage("Briefing: launch on Thursday; watch the payment sandbox.")),
      tools: plannerTools,
      middleware: [hopguardMiddleware()],
    });
    const briefing = await planner.invoke(
      { messages: [{ role: "user", content: "Brief me on the launch" }] },
      { context: { delegation: await alice.delegate({ id: "planner", roles: ["agent", "planner"] }) } },
    );
    console.log(`\n  planner's answer: ${briefing.messages.at(-1)?.text}`);
    console.log(`  plan.md written by the planner? ${existsSync(file("plan.md")) ? "YES (bug!)" : "no — denied"}`);
  });

  await scenario("2. Delegation is authorized too, and scope only narrows", async () => {
    const planning = await alice.delegate({ id: "planner-x", roles: ["agent", "planner"] });
    await planning.delegate({ id: "planner-y", roles: ["agent", "planner"] }).catch(() => undefined);
    await planning
      .delegate({ id: "helper", roles: ["agent"], scope: { tools: ["filesystem/read_*"] } })
      .then((helper) => helper.delegate({ id: "sub-helper", roles: ["agent"], scope: { tools: ["filesystem/*"] } }))
      .catch(() => undefined);
  });

  const scribe = await scenario("3. A rule asks for a person: approvals in both frameworks", async () => {
    const scribe = await alice.delegate({ id: "scribe", roles: ["agent", "writer"] });

    // LangChain: the middleware pauses the run with a HITL interrupt; a person approves; the run resumes.
    const scribeAgent = createAgent({
      model: fakeModel()
        .respondWithTools([
          {
            name: "filesystem__move_file",
            args: { source: file("draft.md"), destination: file("briefing.md") },
            id: "s1",
          },
        ])
        .respond(new AIMessage("Published the briefing.")),
      tools: await langchainMcp.getTools(),
      middleware: [hopguardMiddleware()],
      checkpointer: new MemorySaver(),
    });
    const thread = { context: { delegation: scribe }, configurable: { thread_id: "publish" } };
    const paused = await scribeAgent.invoke({ messages: [{ role: "user", content: "Publish the draft" }] }, thread);
    const interrupt = paused.__interrupt__?.[0]?.value as { actionRequests?: { description?: string }[] } | undefined;
    const asked = interrupt?.actionRequests?.[0]?.description?.split("\n")[0];
    console.log(`\n  ⏸ LangChain run paused for approval (a HITL interrupt): ${asked}`);
    console.log("  carol approves it in the review UI");
    await scribeAgent.invoke(
      new Command({ resume: { decisions: [{ type: "approve", approver: "carol@acme.example" }] } }),
      thread,
    );
    console.log(`  briefing.md published? ${existsSync(file("briefing.md")) ? "yes" : "no"}`);

    // AI SDK: toolApproval answers 'user-approval'; the run stops with a request; a person approves; the next run moves.
    const toolApproval = hopguardToolApproval({ resolveTool: serverOf });
    const prompt: ModelMessage[] = [{ role: "user", content: "Archive the briefing" }];
    const archive = { source: file("briefing.md"), destination: file("archive.md") };
    const first = await guard.runAs(scribe, () =>
      generateText({
        model: scriptedModel({ calls: [{ id: "s2", tool: "move_file", input: archive }] }),
        tools: aiTools,
        toolApproval,
        messages: prompt,
      }),
    );
    const request = first.content.find((part) => part.type === "tool-approval-request");
    console.log(
      `\n  ⏸ AI SDK run stopped with a tool-approval request: ${request?.type === "tool-approval-request" ? request.reason : "none"}`,
    );
    console.log("  a person approves it in the app");
    await guard.runAs(scribe, () =>
      generateText({
        model: scriptedModel({ text: "Archived." }),
        tools: aiTools,
        toolApproval,
        messages: [
          ...prompt,
          ...first.response.messages,
          {
            role: "tool",
            content: [
              {
                type: "tool-approval-response",
                approvalId: request?.type === "tool-approval-request" ? request.approvalId : "",
                approved: true,
              },
            ],
          },
        ],
      }),
    );
    console.log(`  archive.md archived? ${existsSync(file("archive.md")) ? "yes" : "no"}`);
    return scribe;
  });

  await scenario("4. Zero trust: the MCP server decides again, on its own PDP", async () => {
    // Another service: a filesystem MCP server over Streamable HTTP, guarded by a Cerbos PDP of its own whose copy of the
    // policies is stricter (one more rule: agents never write). It trusts nothing the client decided: every request
    // carries its chain as a signed delegation token, which the server verifies and re-authorizes hop by hop.
    const serverPdp = await startLocalPdp({ policyDir: stricterPolicies(join(scratch, "server-policies")) });
    stops.push(() => serverPdp.stop());
    const hostKey = await generateKeyPair("Ed25519"); // the agent host's; the server holds only the public half
    const tokens = createTokenVerifier({ keys: hostKey.publicKey, audience: "filesystem", issuer: "demo-agent-host" });
    const serverTracer = tracing.tracerFor("the filesystem MCP server", "filesystem-mcp-server");
    const service = await serveOverHttp(() => {
      const server = guardMcpServer(new McpServer({ name: "filesystem", version: "1.0.0" }), {
        server: "filesystem",
        client: serverPdp.client,
        tokens,
        tracer: serverTracer,
      });
      server.registerTool(
        "write_file",
        {
          description: "Write a file",
          inputSchema: { path: z.string(), content: z.string() },
          annotations: { destructiveHint: true },
        },
        async ({ path, content }) => {
          writeFileSync(path, content);
          return { content: [{ type: "text", text: `wrote ${path}` }] };
        },
      );
      return server;
    });
    stops.push(() => service.close());
    console.log(
      `  another service's MCP server at ${service.url}, guarded on a PDP of its own: agents never write there`,
    );

    // The agent host: the scribe's MCP client, guarded on the host's PDP, signs its chain into every request.
    const client = new Client({ name: "scribe", version: "1.0.0" });
    stops.push(() => client.close());
    await client.connect(
      delegationTokenTransport(new StreamableHTTPClientTransport(service.url), {
        signer: createTokenSigner({ key: hostKey.privateKey, issuer: "demo-agent-host" }),
        audience: "filesystem",
        delegation: scribe,
      }),
    );
    const remote = guardMcpClient(client, { server: "filesystem", delegation: scribe });
    console.log("  the scribe's MCP client, guarded on the agent host's PDP, signs alice → scribe into every request");
    const written = (await remote.callTool({
      name: "write_file",
      arguments: { path: file("report.md"), content: "Launch: Thursday.\n" },
    })) as CallToolResult;
    // Only a call the client guard allowed leaves the client; a refusal the server made says so in its _meta.
    const refusal = written._meta?.["hopguard.dev/refusal"] as McpRefusal | undefined;
    console.log(
      refusal === undefined
        ? `\n  write_file: ${written.isError ? "refused by the client guard" : "allowed by both guards"}`
        : `\n  write_file: allowed by the client guard → refused by the server guard: ${refusal.reason}`,
    );
    console.log(`  report.md written by the scribe? ${existsSync(file("report.md")) ? "YES (bug!)" : "no — refused"}`);
  });

  const traceFile = process.argv[2] ?? join(tmpdir(), "hopguard-demo.otlp.json");
  tracing.write(traceFile);
  console.log(`\n${tracing.spanCount()} spans written as OTLP-JSON: ${traceFile}`);
} finally {
  await Promise.allSettled([
    langchainMcp.close(),
    aiFilesystem.close(),
    aiMemory.close(),
    ...stops.map((stop) => stop()),
  ]);
  await pdp.stop();
  rmSync(scratch, { recursive: true, force: true });
}

/** One scenario: its heading, and a root span of its own, so that the trace file shows it as one trace. */
function scenario<T>(title: string, run: () => Promise<T>): Promise<T> {
  console.log(`\n=== ${title} ===`);
  return tracing.scenario(title, run);
}
