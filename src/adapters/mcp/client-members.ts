import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { CallToolResult, ListToolsResult } from "@modelcontextprotocol/sdk/types.js";
import { InvalidInputError } from "../../errors.ts";
import type { ClientGate } from "./client-gate.ts";
import { isJsonObject, type JsonObject, jsonSnapshot, own } from "./json-snapshot.ts";
import type { ToolGate } from "./tool-gate.ts";

/** The public `Client` members a guarded view passes to the client as they are: none of them can call a tool. */
const forwarded = [
  "close",
  "notification",
  "ping",
  "complete",
  "setLoggingLevel",
  "getPrompt",
  "listPrompts",
  "listResources",
  "listResourceTemplates",
  "readResource",
  "subscribeResource",
  "unsubscribeResource",
  "sendRootsListChanged",
  "getServerCapabilities",
  "getServerVersion",
  "getInstructions",
  "setRequestHandler",
  "setNotificationHandler",
  "removeRequestHandler",
  "removeNotificationHandler",
  "assertCanSetRequestHandler",
  "registerCapabilities",
  "assertCapability",
] as const;

/** The client's handler properties a view reads and writes through. */
const handlers = ["onclose", "onerror", "fallbackRequestHandler", "fallbackNotificationHandler"] as const;

/** The task methods of `experimental.tasks` that cannot call a tool. */
const taskMethods = ["getTask", "getTaskResult", "listTasks", "cancelTask"] as const;

type Method = (...args: unknown[]) => unknown;
type Stream = AsyncGenerator<unknown, void, void>;
/** What `requestStream` (protected in TypeScript only) and the task streams look like to JavaScript. */
type Streaming = { requestStream(request: unknown, schema: unknown, options?: RequestOptions): Stream };
type Tasks = Streaming & {
  callToolStream(params: unknown, schema: unknown, options?: RequestOptions): Stream;
} & Record<(typeof taskMethods)[number], Method>;

/**
 * The members of a guarded view of `client`: the public MCP `Client` API, with every way to call a tool going
 * through `tools` and everything else run by the client itself (`this` is the client, so subclasses' overrides and
 * `#private` fields work).
 */
export function guardedMembers(client: Client, gate: ClientGate, tools: ToolGate): object {
  const raw = client as unknown as Record<string, Method> & Streaming & { experimental: { tasks: Tasks } };
  const members: Record<string, unknown> = {};
  for (const name of forwarded) {
    // Read at each call, so that a subclass's override (or a method the SDK adds later) is the one that runs.
    members[name] = (...args: unknown[]) => Reflect.apply(raw[name] as Method, client, args);
  }
  for (const name of handlers) {
    Object.defineProperty(members, name, {
      get: () => raw[name],
      set: (handler: Method | undefined) => {
        (raw as Record<string, unknown>)[name] = handler;
      },
      enumerable: true,
    });
  }

  const tasks: Record<string, unknown> = {
    callToolStream: (params: unknown, schema: unknown, options?: RequestOptions) =>
      guardedStream(tools, { method: "tools/call", params }, options, (request) =>
        raw.experimental.tasks.callToolStream(request.params, schema, options),
      ),
    requestStream: (request: unknown, schema: unknown, options?: RequestOptions) =>
      guardedStream(tools, request, options, (snapshot) =>
        raw.experimental.tasks.requestStream(snapshot, schema, options),
      ),
  };
  for (const name of taskMethods) {
    tasks[name] = (...args: unknown[]) => Reflect.apply(raw.experimental.tasks[name], raw.experimental.tasks, args);
  }

  return Object.defineProperties(members, {
    ...Object.getOwnPropertyDescriptors({
      connect: (transport: Transport, options?: RequestOptions) => gate.connect(transport, options),

      /** The gated transport: its `send` is the gate's, its inner transport is out of reach. */
      get transport() {
        return gate.transport;
      },

      experimental: Object.freeze({ tasks: Object.freeze(tasks) }),

      async listTools(...[params, options]: Parameters<Client["listTools"]>) {
        return tools.filter(await client.listTools(params, options), options?.signal);
      },

      async callTool(...[params, schema, options]: Parameters<Client["callTool"]>) {
        const admission = await tools.admit(params, options?.signal);
        return tools.send(admission, (admitted) => client.callTool(admitted, schema, options));
      },

      async request(...[request, schema, options]: Parameters<Client["request"]>) {
        // One snapshot of the request: a getter on `method` or `params` gets no second chance to answer differently.
        const snapshot = requestSnapshot(request);
        const method = own(snapshot, "method");
        if (method === "tools/call") {
          const admission = await tools.admit(own(snapshot, "params"), options?.signal);
          return tools.send(admission, (params) => client.request({ ...snapshot, method, params }, schema, options));
        }
        const result = await client.request(snapshot as Parameters<Client["request"]>[0], schema, options);
        return method === "tools/list" ? tools.filter(result as ListToolsResult, options?.signal) : result;
      },

      // Protected in TypeScript only: JavaScript can call it, so it is gated like the rest.
      requestStream: (request: unknown, schema: unknown, options?: RequestOptions) =>
        guardedStream(tools, request, options, (snapshot) => raw.requestStream(snapshot, schema, options)),
    }),
  });
}

function requestSnapshot(request: unknown): JsonObject {
  const snapshot = jsonSnapshot(request, "request");
  if (!isJsonObject(snapshot)) throw new InvalidInputError("request", "must be an object");
  return snapshot;
}

/**
 * Streams `open(snapshot)` for anything but a tool call; a tool call streams only once admitted, with the admitted
 * params, and a refused one streams its refusal as the one result.
 */
async function* guardedStream(
  tools: ToolGate,
  request: unknown,
  options: RequestOptions | undefined,
  open: (snapshot: JsonObject & { params?: unknown }) => Stream,
): AsyncGenerator<unknown, void, void> {
  const snapshot = requestSnapshot(request);
  if (own(snapshot, "method") !== "tools/call") {
    yield* open(snapshot);
    return;
  }
  const admission = await tools.admit(own(snapshot, "params"), options?.signal);
  if (admission.type === "refused") {
    yield { type: "result", result: admission.result satisfies CallToolResult };
    return;
  }
  try {
    yield* open({ ...snapshot, params: admission.params });
  } finally {
    tools.release(admission);
  }
}
