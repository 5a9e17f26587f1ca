// The two guarded MCP servers in examples/ — one on the MCP SDK's McpServer, one on FastMCP — started as a user
// starts them, and held to the same promise: each caller sees and does only what its chain may.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { presentingTransport } from "../support/presenting-transport.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

describe.each(["examples/mcp-server.ts", "examples/fastmcp-server.ts"])("node %s", (example) => {
  let child: ChildProcess;
  let printed = "";

  beforeAll(async () => {
    // As a user runs it, but against src/ (see hopguard-from-source.ts), on a free port.
    child = spawn(process.execPath, ["--import", "./test/support/hopguard-from-source.ts", example], {
      cwd: root,
      env: { ...process.env, PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout?.setEncoding("utf8");
    await new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`${example} exited with ${code}:\n${printed}`)));
      child.stdout?.on("data", (chunk: string) => {
        printed += chunk;
        if (printed.includes("Ctrl-C to stop.")) resolve();
      });
    });
  }, 60_000);
  afterAll(async () => {
    if (child.exitCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    await exited;
  });

  async function connect(bearer: string, token?: string): Promise<Client> {
    const url = new URL(/listening at (\S+)/.exec(printed)?.[1] ?? "");
    const client = new Client({ name: "example-test", version: "0.0.0" });
    const http = new StreamableHTTPClientTransport(url, {
      requestInit: { headers: { Authorization: `Bearer ${bearer}` } },
    });
    await client.connect(token === undefined ? http : presentingTransport(http, () => ({ token })));
    return client;
  }

  test("prints its URL, the demo bearer keys and a delegation token, and guards what each caller may do", async () => {
    expect(printed).toMatch(/listening at http:\/\/127\.0\.0\.1:\d+\/mcp/);
    expect(printed).toContain("Authorization: Bearer alice-demo-key");
    const token = /^ {2}(ey\S+)$/m.exec(printed)?.[1];
    expect(token).toBeDefined();

    const bob = await connect("bob-demo-key");
    const planner = await connect("alice-demo-key", token);

    const bobsTools = (await bob.listTools()).tools.map((tool) => tool.name);
    const bobsResources = (await bob.listResources()).resources.map((resource) => resource.uri);
    const plannersRead = (await planner.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;
    const plannersWrite = (await planner.callTool({
      name: "write_file",
      arguments: { path: "/workspace/alice/notes.md", content: "x" },
    })) as CallToolResult;

    expect(bobsTools).toEqual(["read_file"]);
    expect(bobsResources).toEqual(["file:///workspace/bob/pipeline.md", "docs://sales/playbook"]);
    expect(plannersRead.content).toEqual([{ type: "text", text: "(the contents of /workspace/alice/notes.md)" }]);
    expect(plannersWrite.isError).toBe(true);
    expect(plannersWrite.content).toEqual([
      {
        type: "text",
        text: expect.stringMatching(/^hopguard refused filesystem\/write_file: denied by agent "planner"/),
      },
    ]);
    await Promise.all([bob.close(), planner.close()]);
  });
});
