import { InvalidInputError } from "../../../errors.ts";
import type { JsonObject } from "../json-snapshot.ts";
import type { RawHandler, RawHandlers } from "./server-catalog.ts";

/** Wraps the server's own handler for `method` in the guard. */
export type HandlerGuard = (method: string, handler: RawHandler, raw: RawHandlers) => RawHandler;

/** The SDK `Protocol` members the guard relies on; TypeScript-private in the SDK, plain properties at run time. */
interface ProtocolInternals {
  _requestHandlers?: unknown;
  _onrequest?: unknown;
  fallbackRequestHandler?: RawHandler | undefined;
}

const guardedServers = new WeakSet<object>();

/**
 * The handler map of a guarded server: every look-up the SDK's dispatcher makes (`_onrequest` calls `get` once per
 * request) returns the server's handler wrapped in the guard, whenever that handler was registered.
 */
class GuardedHandlers extends Map<string, RawHandler> {
  readonly #guard: HandlerGuard;
  readonly #raw: RawHandlers = (method) => this.raw(method);

  constructor(entries: Iterable<[string, RawHandler]>, guard: HandlerGuard) {
    super(entries);
    this.#guard = guard;
  }

  override get(method: string): RawHandler | undefined {
    const handler = super.get(method);
    return handler === undefined ? undefined : this.#guard(method, handler, this.#raw);
  }

  /** The server's own handler, unguarded: for the guard to read the server's listings. */
  raw(method: string): RawHandler | undefined {
    return super.get(method);
  }
}

/**
 * Puts `guard` between the SDK's dispatcher and every request handler of `server` (a low-level SDK `Server`, or the
 * `Server` inside an `McpServer`): those registered before (the `McpServer` constructor's, `initialize`, `ping`),
 * and those registered after (`McpServer`'s lazily installed ones, a later `setRequestHandler`, the fallback).
 *
 * @remarks
 * The SDK dispatches each request by `this._requestHandlers.get(method) ?? this.fallbackRequestHandler`. hopguard
 * replaces that map with one whose `get` wraps, and pins it (not writable, not configurable), and makes the fallback
 * an accessor that wraps. If the server does not have that shape — another SDK version, a look-alike — it throws
 * rather than install a guard that might not see every request.
 */
export function installHandlerGuard(server: unknown, guard: HandlerGuard): void {
  if (typeof server !== "object" || server === null) {
    throw new InvalidInputError("server", "must be an MCP SDK McpServer or Server");
  }
  if (guardedServers.has(server)) throw new InvalidInputError("server", "is already guarded by hopguard");
  const internals = server as ProtocolInternals;
  const handlers = internals._requestHandlers;
  const dispatch = internals._onrequest;
  const slot = Object.getOwnPropertyDescriptor(server, "_requestHandlers");
  const fallbackSlot = Object.getOwnPropertyDescriptor(server, "fallbackRequestHandler");
  const shapeKnown =
    handlers instanceof Map &&
    !(handlers instanceof GuardedHandlers) &&
    slot?.configurable === true &&
    "value" in slot &&
    (fallbackSlot === undefined || (fallbackSlot.configurable === true && "value" in fallbackSlot)) &&
    typeof dispatch === "function" &&
    // The dispatcher still looks its handler up in this map: a guard on a map nobody reads would guard nothing.
    /this\._requestHandlers\.get\(/.test(Function.prototype.toString.call(dispatch)) &&
    typeof (server as { setRequestHandler?: unknown }).setRequestHandler === "function";
  if (!shapeKnown) {
    throw new InvalidInputError(
      "server",
      "is not an MCP SDK server hopguard knows how to guard (its request dispatch is not the one of @modelcontextprotocol/sdk 1.x): refusing to run unguarded",
    );
  }
  const guarded = new GuardedHandlers(handlers as Map<string, RawHandler>, guard);
  const raw: RawHandlers = (method) => guarded.raw(method);
  let fallback = fallbackSlot?.value as RawHandler | undefined;
  Object.defineProperty(server, "_requestHandlers", { value: guarded, writable: false, configurable: false });
  Object.defineProperty(server, "fallbackRequestHandler", {
    get: () =>
      fallback === undefined
        ? undefined
        : (request: JsonObject, extra: JsonObject) =>
            guard(String(request.method), fallback as RawHandler, raw)(request, extra),
    set: (handler: RawHandler | undefined) => {
      fallback = handler;
    },
    enumerable: true,
    configurable: false,
  });
  guardedServers.add(server);
}
