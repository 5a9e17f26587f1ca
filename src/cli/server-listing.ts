import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { Prompt, Resource, ResourceTemplate, Tool } from "@modelcontextprotocol/sdk/types.js";
import { CliError } from "./cli-error.ts";
import type { Progress } from "./progress.ts";

/** Where a live MCP server is: a command to run over stdio, or a Streamable HTTP endpoint. */
export type McpSource =
  | { readonly command: readonly string[] }
  | { readonly url: string; readonly bearerToken?: string | undefined };

/** Everything a server offers, as its own listings say (every page). */
export interface ServerListing {
  /** The name and version the server gave in `initialize`. */
  readonly serverInfo: { readonly name: string; readonly version: string };
  readonly tools: readonly Tool[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplate[];
  readonly prompts: readonly Prompt[];
}

/** More pages than this is a server that never stops paging. */
const maxPages = 1000;
const stderrLimit = 4096;

/**
 * Connects to a live MCP server, reads its tools (with annotations and input schemas), resources, resource
 * templates and prompts, and disconnects (a stdio server's process is stopped). Says what it does on `progress`.
 * A server that cannot be started or reached, that does not answer in `timeoutMs`, or that lists nothing at all is
 * a {@link CliError}.
 */
export async function listServer(source: McpSource, progress: Progress, timeoutMs: number): Promise<ServerListing> {
  const sdk = await loadSdk();
  const where = "command" in source ? source.command.join(" ") : source.url;
  const { transport, stderr } = await openTransport(source, sdk);
  const client = new sdk.Client({ name: "hopguard-cli", version: "0" });
  const connected = progress.step(`connecting to ${where}`);
  try {
    try {
      await client.connect(transport, { timeout: timeoutMs });
    } catch (error) {
      throw connectError(where, error, stderr());
    }
    const serverInfo = client.getServerVersion() ?? { name: "", version: "" };
    connected(`connected to ${serverInfo.name || "the server"} ${serverInfo.version}`.trim());
    const capabilities = client.getServerCapabilities() ?? {};
    const read = async <T>(what: string, offered: unknown, pages: PageReader<T>): Promise<T[]> => {
      if (offered === undefined) return [];
      const done = progress.step(`listing ${what}`);
      const items = await readAll(what, pages, timeoutMs);
      done(`${what}: ${items.length}`);
      return items;
    };
    const tools = await read("tools", capabilities.tools, async (cursor, options) => {
      const page = await client.listTools(cursor === undefined ? {} : { cursor }, options);
      return { items: page.tools, nextCursor: page.nextCursor };
    });
    const resources = await read("resources", capabilities.resources, async (cursor, options) => {
      const page = await client.listResources(cursor === undefined ? {} : { cursor }, options);
      return { items: page.resources, nextCursor: page.nextCursor };
    });
    const resourceTemplates = await read("resource templates", capabilities.resources, async (cursor, options) => {
      const page = await client.listResourceTemplates(cursor === undefined ? {} : { cursor }, options);
      return { items: page.resourceTemplates, nextCursor: page.nextCursor };
    });
    const prompts = await read("prompts", capabilities.prompts, async (cursor, options) => {
      const page = await client.listPrompts(cursor === undefined ? {} : { cursor }, options);
      return { items: page.prompts, nextCursor: page.nextCursor };
    });
    if (tools.length + resources.length + resourceTemplates.length + prompts.length === 0) {
      throw new CliError(`${where} lists no tools, resources or prompts: there is nothing to write policies for`);
    }
    return {
      serverInfo: { name: serverInfo.name, version: serverInfo.version },
      tools,
      resources,
      resourceTemplates,
      prompts,
    };
  } finally {
    await client.close().catch(() => {
      // The server may be gone already; there is nothing left to close then.
    });
  }
}

type PageReader<T> = (
  cursor: string | undefined,
  options: { timeout: number },
) => Promise<{ items: T[]; nextCursor?: string | undefined }>;

async function readAll<T>(what: string, pages: PageReader<T>, timeoutMs: number): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  let count = 0;
  try {
    do {
      if (++count > maxPages) throw new CliError(`the server's ${what} list has more than ${maxPages} pages`);
      const page = await pages(cursor, { timeout: timeoutMs });
      items.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  } catch (error) {
    if (error instanceof CliError) throw error;
    // A server may announce resources yet not implement templates: "method not found" lists nothing.
    if ((error as { code?: unknown }).code === -32601) return items;
    throw new CliError(`the server failed to list its ${what}: ${(error as Error).message}`, { cause: error });
  }
  return items;
}

type Sdk = {
  Client: typeof Client;
  StdioClientTransport: typeof import("@modelcontextprotocol/sdk/client/stdio.js").StdioClientTransport;
  StreamableHTTPClientTransport: typeof import("@modelcontextprotocol/sdk/client/streamableHttp.js").StreamableHTTPClientTransport;
};

/** The MCP SDK is an optional peer of hopguard: only the commands that talk to a server need it. */
async function loadSdk(): Promise<Sdk> {
  try {
    const [client, stdio, http] = await Promise.all([
      import("@modelcontextprotocol/sdk/client/index.js"),
      import("@modelcontextprotocol/sdk/client/stdio.js"),
      import("@modelcontextprotocol/sdk/client/streamableHttp.js"),
    ]);
    return {
      Client: client.Client,
      StdioClientTransport: stdio.StdioClientTransport,
      StreamableHTTPClientTransport: http.StreamableHTTPClientTransport,
    };
  } catch (error) {
    throw new CliError(
      "talking to an MCP server needs the MCP SDK: npm install @modelcontextprotocol/sdk (a peer dependency of hopguard)",
      { cause: error },
    );
  }
}

async function openTransport(source: McpSource, sdk: Sdk): Promise<{ transport: Transport; stderr: () => string }> {
  if ("url" in source) {
    let url: URL;
    try {
      url = new URL(source.url);
    } catch {
      throw new CliError(`--from-mcp-url: "${source.url}" is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new CliError(`--from-mcp-url: "${source.url}" is not an http(s) URL`);
    }
    const headers: Record<string, string> =
      source.bearerToken === undefined ? {} : { Authorization: `Bearer ${source.bearerToken}` };
    return { transport: new sdk.StreamableHTTPClientTransport(url, { requestInit: { headers } }), stderr: () => "" };
  }
  const [command, ...args] = source.command;
  if (command === undefined || command === "") {
    throw new CliError("--from-mcp needs the server's command after --, e.g. --from-mcp -- npx mcp-server-x");
  }
  // The server is the user's own command: it gets the user's environment, as it would in their shell.
  const env = Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  const transport = new sdk.StdioClientTransport({ command, args, env, stderr: "pipe" });
  let tail = "";
  transport.stderr?.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-stderrLimit);
  });
  return { transport, stderr: () => tail.trim() };
}

function connectError(where: string, error: unknown, stderr: string): CliError {
  const message = error instanceof Error ? error.message : String(error);
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const said = stderr === "" ? "" : `\nthe server said:\n${stderr}`;
  const code = (error as { code?: unknown }).code;
  if (code === "ENOENT") return new CliError(`cannot start the MCP server: "${where}" was not found`, { cause: error });
  if (code === 401 || code === 403 || /unauthorized/i.test(message)) {
    return new CliError(`${where} refused the connection (HTTP ${code ?? 401}): check --bearer-token`, {
      cause: error,
    });
  }
  if (typeof cause?.code === "string" || /fetch failed/i.test(message)) {
    return new CliError(
      `cannot reach the MCP server at ${where}: ${String(cause?.code ?? cause?.message ?? message)}`,
      {
        cause: error,
      },
    );
  }
  if (/connection closed/i.test(message)) {
    return new CliError(`the MCP server "${where}" exited before it answered${said}`, { cause: error });
  }
  if (/timed out|timeout/i.test(message)) {
    return new CliError(`the MCP server "${where}" did not answer in time (--timeout)${said}`, { cause: error });
  }
  return new CliError(`cannot connect to the MCP server "${where}": ${message}${said}`, { cause: error });
}
