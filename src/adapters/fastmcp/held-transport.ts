import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage, MessageExtraInfo } from "@modelcontextprotocol/sdk/types.js";

/**
 * A server transport that holds the client's requests — all but `initialize` — until {@link release}: FastMCP
 * connects a session, waits for the client's `initialize`, and only then announces it, so without the hold a client
 * quick off the mark would be answered by a session hopguard has not guarded yet. Responses and notifications pass
 * (FastMCP may ask the client for its roots before it announces the session).
 */
export class HeldTransport implements Transport {
  readonly #inner: Transport;
  #held: [JSONRPCMessage, MessageExtraInfo | undefined][] | undefined = [];

  onmessage?: Transport["onmessage"];
  onclose?: Transport["onclose"];
  onerror?: Transport["onerror"];

  constructor(inner: Transport) {
    this.#inner = inner;
  }

  get sessionId(): string | undefined {
    return this.#inner.sessionId;
  }

  setProtocolVersion(version: string): void {
    this.#inner.setProtocolVersion?.(version);
  }

  async start(): Promise<void> {
    this.#inner.onmessage = (message, extra) => {
      if (this.#held !== undefined && isHeld(message)) this.#held.push([message, extra]);
      else this.onmessage?.(message, extra);
    };
    this.#inner.onclose = () => {
      this.#held = undefined;
      this.onclose?.();
    };
    this.#inner.onerror = (error) => this.onerror?.(error);
    await this.#inner.start();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return this.#inner.send(message, options);
  }

  close(): Promise<void> {
    this.#held = undefined;
    return this.#inner.close();
  }

  /** Lets the held requests through, in the order they came, and every later one at once. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const [message, extra] of held) this.onmessage?.(message, extra);
  }
}

function isHeld(message: JSONRPCMessage): boolean {
  return "method" in message && "id" in message && message.method !== "initialize";
}
