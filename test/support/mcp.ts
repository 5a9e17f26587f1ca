import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";

const serverEntry = (name: string): string =>
  fileURLToPath(new URL(`../../node_modules/@modelcontextprotocol/${name}/dist/index.js`, import.meta.url));

/**
 * The real `@modelcontextprotocol/server-filesystem`, as a stdio child process serving `roots`.
 * Close the returned client to stop it.
 */
export async function connectFilesystemServer(roots: readonly string[]): Promise<Client> {
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [serverEntry("server-filesystem"), ...roots],
      stderr: "ignore",
    }),
  );
  return client;
}

/** The real `@modelcontextprotocol/server-memory`, as a stdio child process keeping its graph in `memoryFile`. */
export async function connectMemoryServer(memoryFile: string): Promise<Client> {
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: [serverEntry("server-memory")],
      env: { ...(process.env as Record<string, string>), MEMORY_FILE_PATH: memoryFile },
      stderr: "ignore",
    }),
  );
  return client;
}

/** An in-memory MCP server whose tools record every execution, for fast tests of what did (not) run. */
export interface RecordingServer {
  client: Client;
  /** Tool names in the order the server executed them. */
  executed: string[];
  close(): Promise<void>;
}

/**
 * An in-memory "filesystem" server: `read_file` (read-only), `write_file` (destructive), `move_file` and
 * `list_allowed_directories`, each recording that it ran. Connect hopguard's adapters to `client`.
 */
export async function startRecordingServer(name = "filesystem"): Promise<RecordingServer> {
  const executed: string[] = [];
  const server = new McpServer({ name, version: "0.0.0" });
  server.registerTool(
    "read_file",
    { description: "Read a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
    async ({ path }) => {
      executed.push("read_file");
      return { content: [{ type: "text", text: `contents of ${path}` }] };
    },
  );
  server.registerTool(
    "write_file",
    {
      description: "Write a file",
      inputSchema: { path: z.string(), content: z.string() },
      annotations: { destructiveHint: true },
    },
    async ({ path }) => {
      executed.push("write_file");
      return { content: [{ type: "text", text: `wrote ${path}` }] };
    },
  );
  server.registerTool(
    "move_file",
    { description: "Move a file", inputSchema: { source: z.string(), destination: z.string() } },
    async ({ source, destination }) => {
      executed.push("move_file");
      return { content: [{ type: "text", text: `moved ${source} to ${destination}` }] };
    },
  );
  server.registerTool(
    "list_allowed_directories",
    { description: "List the directories this server may touch", annotations: { readOnlyHint: true } },
    async () => {
      executed.push("list_allowed_directories");
      return { content: [{ type: "text", text: "/workspace" }] };
    },
  );
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(clientTransport);
  return {
    client,
    executed,
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
