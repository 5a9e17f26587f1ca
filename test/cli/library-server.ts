import { McpServer, ResourceTemplate } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { type HttpMcp, startHttpMcp } from "../support/http-mcp.ts";

/** The bearer token the library server accepts. */
export const libraryToken = "library-token";

/**
 * A "library" MCP server over Streamable HTTP behind a bearer token, offering every kind of thing `hopguard init`
 * sorts: a read-only tool, an open-world read-only tool, an open-world destructive tool, a tool with no annotations,
 * a resource, a resource template and a prompt.
 */
export async function startLibraryServer(): Promise<HttpMcp> {
  return startHttpMcp({
    authenticate: (bearer) =>
      bearer === libraryToken ? { token: bearer, clientId: "librarian", scopes: [] } : undefined,
    makeServer: () => {
      const server = new McpServer({ name: "library-mcp-server", version: "1.2.3" });
      const text = (value: string) => ({ content: [{ type: "text" as const, text: value }] });
      server.registerTool(
        "find_book",
        { inputSchema: { title: z.string() }, annotations: { readOnlyHint: true, openWorldHint: false } },
        async ({ title }) => text(`found ${title}`),
      );
      server.registerTool(
        "search_catalogues",
        { inputSchema: { query: z.string() }, annotations: { readOnlyHint: true, openWorldHint: true } },
        async ({ query }) => text(`searched ${query}`),
      );
      server.registerTool(
        "order_book",
        { inputSchema: { isbn: z.string() }, annotations: { destructiveHint: true, openWorldHint: true } },
        async ({ isbn }) => text(`ordered ${isbn}`),
      );
      server.registerTool("renew_loan", { inputSchema: { loan: z.string() } }, async ({ loan }) =>
        text(`renewed ${loan}`),
      );
      server.registerResource("opening-hours", "library://hours", { mimeType: "text/plain" }, async (uri) => ({
        contents: [{ uri: uri.href, text: "9 to 5" }],
      }));
      server.registerResource(
        "shelf",
        new ResourceTemplate("library://shelves/{shelf}", { list: undefined }),
        { mimeType: "text/plain" },
        async (uri) => ({ contents: [{ uri: uri.href, text: "books" }] }),
      );
      server.registerPrompt("recommend", { argsSchema: { genre: z.string() } }, ({ genre }) => ({
        messages: [{ role: "user", content: { type: "text", text: `Recommend a ${genre} book.` } }],
      }));
      return server;
    },
  });
}
