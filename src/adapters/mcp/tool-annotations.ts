import type { ListToolsResult, Tool } from "@modelcontextprotocol/sdk/types.js";

/** Reads one page of the server's tool list, strictly parsed; `cursor` is undefined for the first page. */
export type ToolListPage = (cursor: string | undefined) => Promise<ListToolsResult>;

/** More pages than this is a server that never stops paging: refused rather than followed forever. */
const maxPages = 1000;
/** A tool list that changes this many times while it is being read is refused rather than read forever. */
const maxAttempts = 3;

/**
 * The annotations a server's own tool list gives each tool: the only source of the annotations hopguard decides
 * with. Listings made by the caller (with a schema of their choosing) never write them.
 *
 * @remarks
 * Annotations are the server's claims about its tools, nothing more: policies may key on them, and hopguard makes
 * sure they are the server's current claims — read from the server, all pages, again after every
 * `notifications/tools/list_changed` — never the caller's or a stale copy. A tool missing from the list is decided
 * with no annotations at all.
 */
export class ToolAnnotations {
  readonly #page: ToolListPage;
  #annotations: ReadonlyMap<string, Tool["annotations"]> = new Map();
  // Bumped by every change the server announced; the map is current when it was read at the latest generation.
  #generation = 0;
  #readAt = -1;
  #reading: Promise<void> | undefined;

  constructor(page: ToolListPage) {
    this.#page = page;
  }

  /** The tool list may have changed (the server said so, or the connection is new): read it again before use. */
  markStale(): void {
    this.#generation++;
  }

  /** The server's current annotations of every listed tool, reading the list first when it may have changed. */
  async current(): Promise<ReadonlyMap<string, Tool["annotations"]>> {
    for (let attempt = 0; this.#readAt !== this.#generation; attempt++) {
      if (attempt === maxAttempts) throw new Error("the server's tool list kept changing while hopguard read it");
      // One read at a time serves every waiting call.
      this.#reading ??= this.#read().finally(() => {
        this.#reading = undefined;
      });
      await this.#reading;
    }
    return this.#annotations;
  }

  async #read(): Promise<void> {
    const generation = this.#generation;
    const annotations = new Map<string, Tool["annotations"]>();
    let cursor: string | undefined;
    let pages = 0;
    do {
      if (++pages > maxPages) throw new Error(`the server's tool list has more than ${maxPages} pages`);
      const page = await this.#page(cursor);
      for (const tool of page.tools) annotations.set(tool.name, tool.annotations);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    this.#annotations = annotations;
    this.#readAt = generation;
  }
}
