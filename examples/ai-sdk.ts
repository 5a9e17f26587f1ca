// A Vercel AI SDK run (generateText) over MCP tools from @ai-sdk/mcp, guarded twice over: hopguardToolApproval is the
// SDK's own policy seam (a denied call becomes an execution-denied result the model reads), and guardTools re-checks
// inside execute. The researcher, acting for alice via a planner, reads a file and is refused a write.
// Swap the scripted model for your provider's.
//   npm run build && node examples/ai-sdk.ts
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMCPClient } from "@ai-sdk/mcp";
import { StdioMCPTransport } from "@ai-sdk/mcp/mcp-stdio";
import { generateText, stepCountIs } from "ai";
import { createGuard } from "hopguard";
import { guardTools, hopguardToolApproval } from "hopguard/ai";
import { startLocalPdp } from "hopguard/local-pdp";
import { mcpServers } from "./support/mcp-servers.ts";
import { scriptedModel } from "./support/scripted-model.ts";

const workspace = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-ai-example-")));
writeFileSync(join(workspace, "notes.md"), "Launch moved to Thursday.\n");

const pdp = await startLocalPdp();
const mcp = await createMCPClient({
  transport: new StdioMCPTransport({ ...mcpServers.filesystem(workspace), stderr: "ignore" }),
});
try {
  const guard = createGuard({ client: pdp.client });
  const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { department: "engineering", workspace } });
  const planner = await alice.delegate({ id: "planner", roles: ["agent", "planner"] });
  const researcher = await planner.delegate({ id: "researcher", roles: ["agent", "researcher"] });

  const model = scriptedModel(
    {
      calls: [
        { id: "read", tool: "read_text_file", input: { path: join(workspace, "notes.md") } },
        { id: "write", tool: "write_file", input: { path: join(workspace, "notes.md"), content: "overwritten" } },
      ],
    },
    { text: "The launch moved to Thursday. I was not allowed to edit the notes." },
  );
  const tools = guardTools(await mcp.tools(), { server: "filesystem" });
  const result = await guard.runAs(researcher, () =>
    generateText({
      model,
      tools,
      toolApproval: hopguardToolApproval({ server: "filesystem" }),
      prompt: "What changed? Update the notes.",
      stopWhen: stepCountIs(3),
    }),
  );

  for (const part of result.steps[0]?.content ?? []) {
    if (part.type === "tool-result") console.log(`${part.toolName} → ${JSON.stringify(part.output).slice(0, 120)}`);
    if (part.type === "tool-approval-response" && !part.approved)
      console.log(`${part.toolCall.toolName} → denied: ${part.reason}`);
  }
  const notes = readFileSync(join(workspace, "notes.md"), "utf8");
  console.log(`notes.md untouched: ${notes === "Launch moved to Thursday.\n"}; model says: ${result.text}`);
} finally {
  await mcp.close();
  await pdp.stop();
  rmSync(workspace, { recursive: true, force: true });
}
