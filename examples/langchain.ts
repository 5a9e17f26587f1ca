// A LangChain.js agent (createAgent) whose MCP tools are guarded by hopguard's middleware: the model is offered only
// what alice's scribe agent may call, each call is authorized for alice and the scribe, and a move — which the
// policy wants a person to approve — pauses the run until someone does. Swap fakeModel for your chat model.
//   npm run build && node examples/langchain.ts
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command, MemorySaver } from "@langchain/langgraph";
import { MultiServerMCPClient } from "@langchain/mcp-adapters";
import { createGuard } from "hopguard";
import { hopguardMiddleware } from "hopguard/langchain";
import { startLocalPdp } from "hopguard/local-pdp";
import { AIMessage, createAgent, fakeModel } from "langchain";
import { mcpServers } from "./support/mcp-servers.ts";

const workspace = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-langchain-example-")));
writeFileSync(join(workspace, "draft.md"), "Briefing draft\n");

const pdp = await startLocalPdp();
const mcp = new MultiServerMCPClient({
  mcpServers: { filesystem: { transport: "stdio", ...mcpServers.filesystem(workspace), stderr: "ignore" } },
});
try {
  const guard = createGuard({ client: pdp.client });
  const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { department: "engineering", workspace } });
  const scribe = await alice.delegate({ id: "scribe", roles: ["agent", "writer"] });

  const agent = createAgent({
    model: fakeModel()
      .respondWithTools([
        { name: "write_file", args: { path: join(workspace, "summary.md"), content: "All good." }, id: "w" },
        {
          name: "move_file",
          args: { source: join(workspace, "draft.md"), destination: join(workspace, "final.md") },
          id: "m",
        },
      ])
      .respond(new AIMessage("Summary written and briefing published.")),
    tools: await mcp.getTools(),
    middleware: [hopguardMiddleware({ server: "filesystem" })],
    checkpointer: new MemorySaver(), // approvals pause the run, so it needs somewhere to wait
  });

  const run = { context: { delegation: scribe }, configurable: { thread_id: "example" } };
  const paused = await agent.invoke({ messages: [{ role: "user", content: "Summarise and publish" }] }, run);
  // As with humanInTheLoopMiddleware, a step that needs an approval runs none of its calls until a person answers.
  const written = () => ["summary.md", "final.md"].filter((file) => existsSync(join(workspace, file))).join(", ");
  console.log(`paused for approval: ${paused.__interrupt__ !== undefined}; written so far: ${written() || "nothing"}`);

  const resumed = await agent.invoke(new Command({ resume: { decisions: [{ type: "approve" }] } }), run);
  console.log(`approved; written: ${written()}; agent says: ${resumed.messages.at(-1)?.text}`);
} finally {
  await mcp.close();
  await pdp.stop();
  rmSync(workspace, { recursive: true, force: true });
}
