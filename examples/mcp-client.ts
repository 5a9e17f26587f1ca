// A raw MCP SDK client, guarded: the researcher (acting for alice, via a planner) sees only the tools every hop could
// call, reads a file, and is refused a write — which never reaches the server.
//   npm run build && node examples/mcp-client.ts
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createGuard } from "hopguard";
import { startLocalPdp } from "hopguard/local-pdp";
import { guardMcpClient } from "hopguard/mcp";
import { mcpServers } from "./support/mcp-servers.ts";

const workspace = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-mcp-example-")));
writeFileSync(join(workspace, "notes.md"), "Launch moved to Thursday.\n");

const pdp = await startLocalPdp(); // the policies in policies/; point createGuard at your PDP in production
const client = new Client({ name: "example", version: "1.0.0" });
await client.connect(new StdioClientTransport({ ...mcpServers.filesystem(workspace), stderr: "ignore" }));
try {
  const guard = createGuard({ client: pdp.client });
  const alice = guard.forUser({ id: "alice", roles: ["user"], attr: { department: "engineering", workspace } });
  const planner = await alice.delegate({ id: "planner", roles: ["agent", "planner"] });
  const researcher = await planner.delegate({ id: "researcher", roles: ["agent", "researcher"] });

  const filesystem = guardMcpClient(client, { server: "filesystem", delegation: researcher });

  const { tools } = await filesystem.listTools();
  console.log(`researcher sees ${tools.length} tools: ${tools.map((tool) => tool.name).join(", ")}`);

  const read = await filesystem.callTool({ name: "read_text_file", arguments: { path: join(workspace, "notes.md") } });
  console.log("read_text_file →", JSON.stringify(read.content));

  const write = await filesystem.callTool({
    name: "write_file",
    arguments: { path: join(workspace, "notes.md"), content: "overwritten" },
  });
  console.log(`write_file → isError=${write.isError}`, JSON.stringify(write.content));
} finally {
  await client.close();
  await pdp.stop();
  rmSync(workspace, { recursive: true, force: true });
}
