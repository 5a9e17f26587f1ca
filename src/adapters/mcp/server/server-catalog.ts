import { UriTemplate } from "@modelcontextprotocol/sdk/shared/uriTemplate.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { isJsonObject, type JsonObject } from "../json-snapshot.ts";
import type { ResourceFacts } from "./server-checks.ts";

/** A request handler as the SDK stores it: the raw JSON-RPC request, parsed inside. */
export type RawHandler = (request: JsonObject, extra: JsonObject) => Promise<unknown>;

/** The server's own handler for a method, unguarded: what it would answer anyone. */
export type RawHandlers = (method: string) => RawHandler | undefined;

/** More pages than this is a server that never stops paging: refused rather than followed forever. */
const maxPages = 100;

/**
 * What the server itself says about its tools and resources, read from its own list handlers: the only source of
 * the facts (annotations, names, MIME types, templates) hopguard decides with, never the request.
 *
 * @remarks
 * Read for each decision that needs it, so it is always current (tools registered after `connect`, resources that
 * come and go). A list that cannot be read throws: the request is then refused.
 */
export class ServerCatalog {
  readonly #raw: RawHandlers;
  readonly #extra: JsonObject;

  constructor(raw: RawHandlers, extra: JsonObject) {
    this.#raw = raw;
    this.#extra = extra;
  }

  /** The annotations the server's tool list gives `name`; `undefined` for a tool it does not list. */
  async toolAnnotations(name: string): Promise<Tool["annotations"]> {
    for await (const tool of this.#items("tools/list", "tools")) {
      if (tool.name === name) return isJsonObject(tool.annotations) ? (tool.annotations as Tool["annotations"]) : {};
    }
    return undefined;
  }

  /**
   * The facts about reading `uri` (canonical): its entry in the resource list, else the first template that matches
   * it (the order in which the SDK's `McpServer` looks), else the URI alone.
   */
  async resource(uri: string): Promise<ResourceFacts> {
    for await (const entry of this.#items("resources/list", "resources")) {
      if (canonicalUri(entry.uri) === uri) return { uri, ...resourceFacts(entry) };
    }
    for await (const entry of this.#items("resources/templates/list", "resourceTemplates")) {
      if (matches(entry.uriTemplate, uri))
        return { uri, template: entry.uriTemplate as string, ...resourceFacts(entry) };
    }
    return { uri };
  }

  /** The facts about completing `ref/resource` `uri`: the template it names, else the resource it names. */
  async completionTarget(uri: string): Promise<ResourceFacts> {
    for await (const entry of this.#items("resources/templates/list", "resourceTemplates")) {
      if (entry.uriTemplate === uri) return { template: uri, ...resourceFacts(entry) };
    }
    const canonical = canonicalUri(uri);
    // Neither a template nor a URI: checked under its own name, which no policy should admit.
    return canonical === undefined ? { template: uri } : this.resource(canonical);
  }

  async *#items(method: string, key: string): AsyncGenerator<JsonObject> {
    const handler = this.#raw(method);
    if (handler === undefined) return;
    let cursor: unknown;
    for (let page = 1; ; page++) {
      if (page > maxPages) throw new Error(`the server's ${method} has more than ${maxPages} pages`);
      const result = await handler(
        { jsonrpc: "2.0", id: 0, method, params: cursor === undefined ? {} : { cursor } },
        this.#extra,
      );
      const items = isJsonObject(result) ? result[key] : undefined;
      if (!Array.isArray(items)) throw new Error(`the server's ${method} answered without a ${key} list`);
      for (const item of items) if (isJsonObject(item)) yield item;
      cursor = (result as JsonObject).nextCursor;
      if (typeof cursor !== "string") return;
    }
  }
}

/**
 * A URI as the SDK's `McpServer` reads it (`new URL(uri).href`): dot segments resolved, percent-escapes and case
 * normalized. hopguard decides on this form and hands the handler exactly it, so `file:///ws/alice/../bob/x` is
 * judged as the `file:///ws/bob/x` it reads. `undefined` for what is not an absolute URI, or not a stable one.
 */
export function canonicalUri(uri: unknown): string | undefined {
  if (typeof uri !== "string") return undefined;
  try {
    const href = new URL(uri).href;
    return new URL(href).href === href ? href : undefined;
  } catch {
    return undefined;
  }
}

/** The name and MIME type a listing entry gives a resource or template. */
export function resourceFacts(entry: JsonObject): Pick<ResourceFacts, "name" | "mimeType"> {
  return {
    ...(typeof entry.name === "string" ? { name: entry.name } : {}),
    ...(typeof entry.mimeType === "string" ? { mimeType: entry.mimeType } : {}),
  };
}

function matches(template: unknown, uri: string): boolean {
  if (typeof template !== "string") return false;
  try {
    return new UriTemplate(template).match(uri) !== null;
  } catch {
    return false;
  }
}
