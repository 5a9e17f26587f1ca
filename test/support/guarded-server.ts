import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { completable } from "@modelcontextprotocol/sdk/server/completable.js";
import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { z } from "zod";
import { currentDelegation } from "../../src/current-delegation.ts";

/** What a server-side handler saw when it ran: which one, the `_meta` it was given, and the chain it ran for. */
export interface Execution {
  readonly what: string;
  readonly meta: Record<string, unknown> | undefined;
  readonly chain: readonly string[] | undefined;
  readonly arguments?: unknown;
}

/**
 * An MCP "filesystem" server with tools, resources, a resource template and prompts whose every handler records
 * that it ran (`read_file`, `read file:///…`, `prompt code_review`, `complete path`, ...): what a guarded server let
 * through, and nothing else, ends up in `executions`.
 */
export function filesystemServer(options: { capabilities?: boolean; record?: (execution: Execution) => void } = {}): {
  server: McpServer;
  executions: Execution[];
} {
  const executions: Execution[] = [];
  const record = (what: string, extra: { _meta?: Record<string, unknown> | undefined }, args?: unknown) => {
    const execution: Execution = {
      what,
      meta: extra._meta === undefined ? undefined : { ...extra._meta },
      chain: currentDelegation()?.chain,
      ...(args === undefined ? {} : { arguments: args }),
    };
    executions.push(execution);
    options.record?.(execution);
  };
  const server = new McpServer(
    { name: "filesystem", version: "0.0.0" },
    options.capabilities === true ? { capabilities: { tools: {}, resources: {}, prompts: {} } } : {},
  );
  server.registerTool(
    "read_file",
    { description: "Read a file", inputSchema: { path: z.string() }, annotations: { readOnlyHint: true } },
    async (args, extra) => {
      record("read_file", extra, args);
      return { content: [{ type: "text", text: `contents of ${args.path}` }] };
    },
  );
  server.registerTool(
    "write_file",
    {
      description: "Write a file",
      inputSchema: { path: z.string(), content: z.string() },
      annotations: { destructiveHint: true },
    },
    async (args, extra) => {
      record("write_file", extra, args);
      return { content: [{ type: "text", text: `wrote ${args.path}` }] };
    },
  );
  const fixed: [name: string, uri: string][] = [
    ["alice-notes", "file:///workspace/alice/notes.md"],
    ["bob-pipeline", "file:///workspace/bob/pipeline.md"],
    ["runbook", "docs://engineering/runbook"],
    ["playbook", "docs://sales/playbook"],
  ];
  for (const [name, uri] of fixed) {
    server.registerResource(name, uri, { mimeType: "text/markdown" }, async (url, extra) => {
      record(`read ${url.href}`, extra);
      return { contents: [{ uri: url.href, text: `the text of ${name}` }] };
    });
  }
  server.registerResource(
    "workspace-file",
    new ResourceTemplate("file:///workspace/{user}/{file}", {
      list: undefined,
      complete: {
        file: (value) => {
          record("complete file", {});
          return ["notes.md", "todo.md", "salaries.csv"].filter((file) => file.startsWith(value));
        },
      },
    }),
    { mimeType: "text/plain" },
    async (url, variables, extra) => {
      record(`read ${url.href}`, extra, variables);
      return { contents: [{ uri: url.href, text: `the text of ${variables.file}` }] };
    },
  );
  server.registerPrompt(
    "summarize_file",
    {
      description: "Summarize a file",
      argsSchema: {
        path: completable(z.string(), (value) => {
          record("complete path", {});
          return ["/workspace/alice/notes.md", "/workspace/bob/pipeline.md"].filter((path) => path.startsWith(value));
        }),
      },
    },
    async (args, extra) => {
      record("prompt summarize_file", extra, args);
      return { messages: [{ role: "user", content: { type: "text", text: `Summarize ${args.path}` } }] };
    },
  );
  server.registerPrompt("code_review", { description: "Review the current change" }, async (extra) => {
    record("prompt code_review", extra);
    return { messages: [{ role: "user", content: { type: "text", text: "Review this change." } }] };
  });
  server.registerPrompt(
    "sales_pitch",
    {
      description: "Pitch to a customer",
      argsSchema: {
        customer: completable(z.string(), (value) => {
          record("complete customer", {});
          return ["acme", "globex"].filter((customer) => customer.startsWith(value));
        }),
      },
    },
    async (args, extra) => {
      record("prompt sales_pitch", extra, args);
      return { messages: [{ role: "user", content: { type: "text", text: `Pitch to ${args.customer}` } }] };
    },
  );
  return { server, executions };
}

/** Connects a fresh SDK `Client` to `server` in memory, through `wrap` (say, a token transport) when given. */
export async function connectInMemory(
  server: { connect(transport: Transport): Promise<void> },
  wrap: (transport: Transport) => Transport = (transport) => transport,
): Promise<Client> {
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(wrap(clientTransport));
  return client;
}
