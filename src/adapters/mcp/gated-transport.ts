import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { InvalidInputError } from "../../errors.ts";

/** What a {@link GatedTransport} asks before a message leaves, and tells when one arrives. */
export interface TransportGate {
  /** The message to send in place of `message` (its snapshot); throws to refuse sending anything. */
  screen(message: unknown): JSONRPCMessage;
  /** Sees every incoming message before the client does. */
  observe(message: unknown): void;
}

type Send = Transport["send"];
type MessageHandler = NonNullable<Transport["onmessage"]>;

// The send each transport had before hopguard gated it: wrapping a transport again (a reconnect) must gate the
// original once, not the previous gate.
const originalSends = new WeakMap<Transport, Send>();
// The inbound handlers hopguard installed: a new wrapper of the same transport replaces, never chains, them.
const dispatchers = new WeakSet<MessageHandler>();

/**
 * The transport a guarded client talks through: exactly the MCP `Transport` interface, over an inner transport it
 * keeps private, with every outgoing message screened by a {@link TransportGate}.
 *
 * @remarks
 * The inner transport's own `send` is replaced by the screened one too, so code that still holds it and calls
 * `inner.send(...)` is screened as well. Only a caller of the inner class's prototype `send` (or of the pipe or socket
 * beneath) is out of reach: no in-process guard can stop that, a server-side guard can.
 *
 * Reading `onmessage` gives `undefined`: the handler set there is the client's inbound path, and whoever could call
 * it could forge the server's answers (a tool list with harmless annotations, say).
 */
export class GatedTransport implements Transport {
  readonly #inner: Transport;
  readonly #send: Send;
  #onmessage: MessageHandler | undefined;

  constructor(inner: Transport, gate: TransportGate) {
    const original = originalSends.get(inner) ?? inner.send;
    if (typeof original !== "function") throw new InvalidInputError("transport.send", "must be a function");
    // Screened synchronously, before the first await: the snapshot is taken while the caller waits.
    const screened: Send = async (message, options) => original.call(inner, gate.screen(message), options);
    Object.defineProperty(inner, "send", { value: screened, writable: true, configurable: true, enumerable: false });
    originalSends.set(inner, original);
    this.#inner = inner;
    this.#send = screened;
    // A handler already on the inner transport (the client's, when wrapping a live connection) keeps receiving.
    const before = inner.onmessage !== undefined && !dispatchers.has(inner.onmessage) ? inner.onmessage : undefined;
    const dispatch: MessageHandler = (message, extra) => {
      gate.observe(message);
      before?.(message, extra);
      this.#onmessage?.(message, extra);
    };
    dispatchers.add(dispatch);
    inner.onmessage = dispatch;
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    return this.#send(message, options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  get sessionId(): string | undefined {
    return this.#inner.sessionId;
  }

  setProtocolVersion(version: string): void {
    this.#inner.setProtocolVersion?.(version);
  }

  get onmessage(): MessageHandler | undefined {
    return undefined;
  }

  set onmessage(handler: MessageHandler | undefined) {
    this.#onmessage = handler;
  }

  get onclose(): (() => void) | undefined {
    return this.#inner.onclose;
  }

  set onclose(handler: (() => void) | undefined) {
    this.#inner.onclose = handler;
  }

  get onerror(): ((error: Error) => void) | undefined {
    return this.#inner.onerror;
  }

  set onerror(handler: ((error: Error) => void) | undefined) {
    this.#inner.onerror = handler;
  }
}
