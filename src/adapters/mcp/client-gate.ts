import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type JSONRPCMessage, ListToolsResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { HopguardError } from "../../errors.ts";
import { Admissions } from "./admissions.ts";
import { GatedTransport, type TransportGate } from "./gated-transport.ts";
import { isJsonObject, jsonSnapshot, own } from "./json-snapshot.ts";
import { ToolAnnotations } from "./tool-annotations.ts";

// One gate per client, shared by all its guarded views: one connection, one set of tickets, one tool list.
const gates = new WeakMap<Client, ClientGate>();

/**
 * Everything hopguard keeps for one MCP `Client`: the transport it gates, the admitted tool calls, and the
 * annotations of the server's tools.
 */
export class ClientGate implements TransportGate {
  /** The tool calls hopguard authorized and the transport may send, each once. */
  readonly admissions = new Admissions();
  /** The server's annotations, read by the gate itself. */
  readonly annotations: ToolAnnotations;
  readonly #client: Client;
  #transport: GatedTransport | undefined;

  private constructor(client: Client) {
    this.#client = client;
    this.annotations = new ToolAnnotations((cursor) =>
      client.request({ method: "tools/list", params: cursor === undefined ? {} : { cursor } }, ListToolsResultSchema),
    );
  }

  /** The gate of `client`, gating its live connection now if it has one that is not gated yet. */
  static of(client: Client): ClientGate {
    let gate = gates.get(client);
    if (gate === undefined) {
      gate = new ClientGate(client);
      gates.set(client, gate);
    }
    const live = client.transport;
    if (live !== undefined && live !== gate.#transport) gate.#replaceLive(live);
    return gate;
  }

  /** The gated transport, while the client is connected through it; `undefined` otherwise (closed, or reconnected raw). */
  get transport(): GatedTransport | undefined {
    const current = this.#transport;
    return current !== undefined && this.#client.transport === current ? current : undefined;
  }

  /** Connects the client through a gated wrapper of `transport`. */
  async connect(transport: Transport, options?: RequestOptions): Promise<void> {
    if (this.#client.transport !== undefined) {
      // What the SDK would say, before hopguard replaces the gate of the live connection with an unused one.
      throw new Error("Already connected to a transport. Call close() before connecting to a new transport.");
    }
    await this.#client.connect(this.#wrap(transport), options);
  }

  /** Refuses JSON-RPC batches and any `tools/call` without its admission; sends the snapshot of everything else. */
  screen(message: unknown): JSONRPCMessage {
    const snapshot = jsonSnapshot(message, "message");
    if (Array.isArray(snapshot)) {
      throw new HopguardError("authorization_failed", "hopguard refused to send a JSON-RPC batch: MCP has none");
    }
    if (!isJsonObject(snapshot))
      throw new HopguardError("authorization_failed", "hopguard refused a non-object message");
    if (own(snapshot, "method") !== "tools/call") return snapshot as JSONRPCMessage;
    return { ...snapshot, params: this.admissions.redeem(own(snapshot, "params")) } as JSONRPCMessage;
  }

  /** Marks the tool list stale when the server says it changed, before the client handles the notification. */
  observe(message: unknown): void {
    if (isJsonObject(message) && message.method === "notifications/tools/list_changed") this.annotations.markStale();
  }

  #wrap(transport: Transport): GatedTransport {
    const gated = new GatedTransport(transport, this);
    this.#transport = gated;
    this.annotations.markStale();
    return gated;
  }

  #replaceLive(live: Transport): void {
    const gated = this.#wrap(live);
    // The SDK keeps its transport in `_transport` and uses nothing else: replacing it gates every send the client
    // makes from now on, whichever method makes it.
    (this.#client as unknown as { _transport: Transport })._transport = gated;
    if (this.#client.transport !== gated) {
      throw new HopguardError("authorization_failed", "hopguard could not gate this client's transport");
    }
  }
}
