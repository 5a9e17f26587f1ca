import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

/** What a test client presents with every request: any token string (forged ones too), a traceparent, an authInfo. */
export interface Presented {
  /** Put under `params._meta["hopguard.dev/delegation"]` as is; `undefined` leaves the key out. */
  token?: string | undefined;
  traceparent?: string | undefined;
  /** Handed to an `InMemoryTransport` as the authenticated caller, as an HTTP server's bearer auth would. */
  authInfo?: AuthInfo | undefined;
}

/**
 * A client transport for attacks and edge cases: it stamps whatever `present()` says on every request, unlike
 * hopguard's own token transport, which only ever sends tokens it minted.
 */
export function presentingTransport(inner: Transport, present: () => Presented): Transport {
  const wrapper: Transport = {
    start: () => inner.start(),
    close: () => inner.close(),
    send: (message: JSONRPCMessage, options?: TransportSendOptions) => {
      const { token, traceparent, authInfo } = present();
      let sent = message;
      if ("method" in message && "id" in message) {
        const params = (message.params ?? {}) as Record<string, unknown>;
        const meta = (params._meta ?? {}) as Record<string, unknown>;
        sent = {
          ...message,
          params: {
            ...params,
            _meta: {
              ...meta,
              ...(token === undefined ? {} : { "hopguard.dev/delegation": token }),
              ...(traceparent === undefined ? {} : { traceparent }),
            },
          },
        } as JSONRPCMessage;
      }
      return inner.send(sent, { ...options, ...(authInfo === undefined ? {} : { authInfo }) } as TransportSendOptions);
    },
  };
  Object.defineProperty(wrapper, "onmessage", {
    get: () => inner.onmessage,
    set: (handler) => {
      inner.onmessage = handler;
    },
  });
  Object.defineProperty(wrapper, "onclose", {
    get: () => inner.onclose,
    set: (handler) => {
      inner.onclose = handler;
    },
  });
  Object.defineProperty(wrapper, "onerror", {
    get: () => inner.onerror,
    set: (handler) => {
      inner.onerror = handler;
    },
  });
  return wrapper;
}
