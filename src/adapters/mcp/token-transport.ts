import type { Transport, TransportSendOptions } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage, MessageExtraInfo } from "@modelcontextprotocol/sdk/types.js";
import { isSpanContextValid, trace } from "@opentelemetry/api";
import { decodeJwt } from "jose";
import { Delegation } from "../../delegation.ts";
import type { TokenSigner } from "../../delegation-token.ts";
import { InvalidInputError } from "../../errors.ts";
import { resolveDelegation } from "../../tool-call-outcome.ts";
import { isJsonObject, type JsonObject, jsonSnapshot, own } from "./json-snapshot.ts";

/** The `params._meta` key a delegation token travels under, from every hopguard client to every guarded server. */
export const delegationMetaKey = "hopguard.dev/delegation";

/** Options for {@link delegationTokenTransport}. */
export interface DelegationTokenTransportOptions {
  /** Signs the tokens (`createTokenSigner` from `hopguard`). Keep its key where only the delegating code can reach it. */
  signer: TokenSigner;
  /**
   * The server(s) the tokens are for (their `aud`): the name a guarded server's verifier knows itself by. A token
   * for one server is refused by every other.
   */
  audience: string | readonly string[];
  /**
   * The chain every request acts for. A request sent inside `runAs` for a chain delegated from this one (a sub-agent
   * of this orchestrator) carries that longer chain instead, as `guardMcpClient` decides it.
   *
   * @defaultValue the ambient chain set by `runAs` when each request is sent
   */
  delegation?: Delegation | undefined;
  /**
   * How long each token lives, in seconds (never past the chain's own scope expiry). A token is reused for later
   * requests of the same chain until shortly before it expires (the last sixth of its life, at most 10 seconds), so
   * keep it within the server verifier's `maxTokenAgeSeconds` (300 by default).
   *
   * @defaultValue `60`
   */
  ttlSeconds?: number | undefined;
  /** The `params._meta` key the token goes under; the server must read the same one. @defaultValue `"hopguard.dev/delegation"` */
  metaKey?: string | undefined;
  /**
   * Whether each request also carries the active span's W3C trace context (`_meta.traceparent`, and
   * `_meta.tracestate` when there is one), as the OpenTelemetry MCP conventions place it, so the server's decision
   * spans join the client's trace. A `traceparent` the caller set itself is kept.
   *
   * @defaultValue `true`
   */
  traceContext?: boolean | undefined;
}

/** Close options some client libraries pass (`@ai-sdk/mcp`); forwarded to the inner transport as they are. */
interface CloseOptions {
  signal?: AbortSignal;
}

/** The members of `@ai-sdk/mcp`'s `MCPTransport` beyond the SDK's `Transport`, which a wrapper must forward. */
interface TransportExtras {
  protocolVersion?: string | undefined;
  supportsProtocolVersionDiscovery?: boolean | undefined;
  waitsForProtocolVersionDiscovery?: boolean | undefined;
  supportsMcpToolParameterHeaders?: boolean | undefined;
}

type Inner = Transport & TransportExtras;

/** A token being minted or minted, and when to mint the next one for the same chain. */
interface CachedToken {
  readonly token: Promise<string>;
  refreshAt: number;
}

const noop = (): void => {};

/**
 * A client transport that carries a signed delegation token on every request; made by
 * {@link delegationTokenTransport}.
 */
export class DelegationTokenTransport implements Transport {
  // Plain optional members, typed as the SDK's own client transports type them, so that the wrapper is both an SDK
  // `Transport` and an `@ai-sdk/mcp` `MCPTransport` under `exactOptionalPropertyTypes`. The inner transport's
  // handlers, installed once, call whatever is set here.
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onclose?: () => void;
  onerror?: (error: Error) => void;

  readonly #inner: Inner;
  readonly #signer: TokenSigner;
  readonly #audience: string | readonly string[];
  readonly #delegation: Delegation | undefined;
  readonly #ttlSeconds: number;
  readonly #metaKey: string;
  readonly #traceContext: boolean;
  // Per chain object: a transport has one audience, so one token serves every request of that chain for a while.
  readonly #tokens = new WeakMap<Delegation, CachedToken>();
  // Settles once the previous message went to the inner transport: messages leave in the order they were sent, even
  // when a later one needs no token and an earlier one is still being signed.
  #tail: Promise<void> = Promise.resolve();

  /** @internal Use {@link delegationTokenTransport}. */
  constructor(inner: Transport, options: DelegationTokenTransportOptions) {
    this.#inner = inner;
    this.#signer = options.signer;
    this.#audience = options.audience;
    this.#delegation = options.delegation;
    this.#ttlSeconds = options.ttlSeconds ?? 60;
    this.#metaKey = options.metaKey ?? delegationMetaKey;
    this.#traceContext = options.traceContext ?? true;
    inner.onmessage = (message, extra) => this.onmessage?.(message, extra);
    inner.onclose = () => this.onclose?.();
    inner.onerror = (error) => this.onerror?.(error);
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  /**
   * Sends a copy of `message`: a request's copy carries a token for the chain in effect now under the meta key;
   * notifications and responses are sent unchanged. Rejects, sending nothing, when the chain cannot be signed
   * (expired, or the signer fails).
   */
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    let ready: Promise<JSONRPCMessage>;
    try {
      // Read now, while the caller waits: the chain, the span and the message as they are at the call.
      ready = this.#stamp(message);
    } catch (error) {
      return Promise.reject(error);
    }
    ready.catch(noop);
    const turn = this.#tail.then(() => ready).then((stamped) => ({ sending: this.#inner.send(stamped, options) }));
    this.#tail = turn.then(noop, noop);
    return turn.then(({ sending }) => sending);
  }

  close(options?: CloseOptions): Promise<void> {
    return (this.#inner as { close(options?: CloseOptions): Promise<void> }).close(options);
  }

  get sessionId(): string | undefined {
    return this.#inner.sessionId;
  }

  setProtocolVersion(version: string): void {
    // What `@ai-sdk/mcp` does with a transport that has no setter, so it keeps working behind this one.
    if (typeof this.#inner.setProtocolVersion === "function") this.#inner.setProtocolVersion(version);
    else this.#inner.protocolVersion = version;
  }

  // The discovery flags as booleans (absent reads false, as `@ai-sdk/mcp` treats it): an optional `boolean` member
  // cannot be `undefined` under `exactOptionalPropertyTypes`, so a wrapper typed so would not be an `MCPTransport`.
  get supportsProtocolVersionDiscovery(): boolean {
    return this.#inner.supportsProtocolVersionDiscovery === true;
  }

  get waitsForProtocolVersionDiscovery(): boolean {
    return this.#inner.waitsForProtocolVersionDiscovery === true;
  }

  get supportsMcpToolParameterHeaders(): boolean {
    return this.#inner.supportsMcpToolParameterHeaders === true;
  }

  #stamp(message: unknown): Promise<JSONRPCMessage> {
    const snapshot = jsonSnapshot(message, "message");
    if (!isRequest(snapshot)) return Promise.resolve(snapshot as JSONRPCMessage);
    const params = own(snapshot, "params") ?? {};
    const meta = isJsonObject(params) ? (own(params, "_meta") ?? {}) : undefined;
    // Positional params or a non-object `_meta` leave no place for a token: sent as they are, a guarded server
    // refuses them.
    if (!isJsonObject(params) || !isJsonObject(meta)) return Promise.resolve(snapshot as JSONRPCMessage);
    // Whatever the caller put under the key is dropped: the token there is always one this transport minted.
    const { [this.#metaKey]: _dropped, ...rest } = meta;
    const stamped = (token: string | undefined): JSONRPCMessage =>
      ({
        ...snapshot,
        params: {
          ...params,
          _meta: {
            ...rest,
            ...(this.#traceContext ? traceContext(rest) : {}),
            ...(token === undefined ? {} : { [this.#metaKey]: token }),
          },
        },
      }) as JSONRPCMessage;
    const delegation = resolveDelegation(this.#delegation);
    return delegation === undefined ? Promise.resolve(stamped(undefined)) : this.#token(delegation).then(stamped);
  }

  #token(delegation: Delegation): Promise<string> {
    const cached = this.#tokens.get(delegation);
    if (cached !== undefined && Date.now() < cached.refreshAt) return cached.token;
    const token = delegation.toToken(this.#signer, { audience: this.#audience, ttlSeconds: this.#ttlSeconds });
    // Requests sent while it is signed wait for the same token.
    const entry: CachedToken = { token, refreshAt: Number.POSITIVE_INFINITY };
    this.#tokens.set(delegation, entry);
    token.then(
      (minted) => {
        entry.refreshAt = refreshTime(minted);
      },
      () => {
        if (this.#tokens.get(delegation) === entry) this.#tokens.delete(delegation);
      },
    );
    return token;
  }
}

/**
 * Wraps an MCP client transport so that every JSON-RPC request it sends carries a signed delegation token for the
 * chain in effect, in `params._meta["hopguard.dev/delegation"]`, and the active span's W3C trace context in
 * `params._meta.traceparent`: the chain a server guard (`guardMcpServer`) verifies and authorizes again, hop by hop,
 * on its own PDP.
 *
 * @remarks
 * The transport is the one seam every MCP client library shares: hand the wrapper to the SDK's `client.connect`,
 * to `@ai-sdk/mcp`'s `createMCPClient({ transport })`, or connect an SDK `Client` over it and pass that to
 * `@langchain/mcp-adapters`' `loadMcpTools`. It composes with `guardMcpClient`, which gates whatever transport
 * the client has: the client guard decides first, then the request leaves with its token.
 *
 * - **Which chain**: the `delegation` option, unless the request is sent inside `runAs` for a chain delegated from
 *   it (then that longer chain); without the option, the ambient `runAs` chain. It is read when the request is sent.
 * - **No chain**: the request is sent without a token, and a guarded server refuses it: fail closed. A chain that
 *   cannot be signed (expired, a failing signer) makes `send` reject and nothing is sent.
 * - **What is sent**: a JSON copy of each message, taken when `send` is called; the caller's object is never changed.
 *   Only requests get a token (notifications and responses go unchanged), in the order they were sent. A token
 *   minted for a chain is reused for its later requests until shortly before it expires, so a token is a bearer
 *   credential for its lifetime: keep `ttlSeconds` short.
 * - **What is forwarded**: `start`, `close`, `sessionId`, `setProtocolVersion` (to the inner transport's, else to
 *   its `protocolVersion` property, as `@ai-sdk/mcp` does), `onmessage`, `onclose`, `onerror`, and `@ai-sdk/mcp`'s
 *   protocol-discovery flags.
 *
 * @example
 * ```ts
 * import { Client } from "@modelcontextprotocol/sdk/client/index.js";
 * import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
 * import { generateKeyPair } from "jose";
 * import { createGuard, createTokenSigner, runAs } from "hopguard";
 * import { startLocalPdp } from "hopguard/local-pdp";
 * import { delegationTokenTransport, guardMcpClient } from "hopguard/mcp";
 *
 * await using pdp = await startLocalPdp();
 * const alice = createGuard({ client: pdp.client }).forUser({ id: "alice", roles: ["user"], attr: { workspace: "/workspace/alice" } });
 * const researcher = await alice.delegate({ id: "researcher", roles: ["agent"] });
 * const signer = createTokenSigner({ key: (await generateKeyPair("Ed25519")).privateKey, kid: "2026-11" });
 *
 * const transport = delegationTokenTransport(new StreamableHTTPClientTransport(new URL("http://127.0.0.1:3000/mcp")), {
 *   signer,
 *   audience: "filesystem",
 * });
 * const client = new Client({ name: "my-agent", version: "1.0.0" });
 * await runAs(researcher, async () => {
 *   await client.connect(transport);
 *   // Checked here by the client guard, and again by the server from the token.
 *   const filesystem = guardMcpClient(client, { server: "filesystem" });
 *   await filesystem.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });
 * });
 * ```
 */
export function delegationTokenTransport(
  inner: Transport,
  options: DelegationTokenTransportOptions,
): DelegationTokenTransport {
  for (const member of ["start", "send", "close"] as const) {
    if (typeof (inner as Partial<Transport> | undefined)?.[member] !== "function") {
      throw new InvalidInputError(`inner.${member}`, "must be a function (an MCP client transport)");
    }
  }
  if (typeof options?.signer?.sign !== "function") {
    throw new InvalidInputError("options.signer", "must be a token signer (createTokenSigner)");
  }
  const { audience, delegation, ttlSeconds, metaKey, traceContext } = options;
  const audiences: readonly unknown[] =
    typeof audience === "string" ? [audience] : Array.isArray(audience) ? audience : [];
  if (audiences.length === 0 || audiences.some((name) => typeof name !== "string" || name === "")) {
    throw new InvalidInputError("options.audience", "must name the server (or servers) the tokens are for");
  }
  if (delegation !== undefined && !Delegation.isDelegation(delegation)) {
    throw new InvalidInputError("options.delegation", "must be a chain made by a hopguard guard");
  }
  if (ttlSeconds !== undefined && (typeof ttlSeconds !== "number" || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0)) {
    throw new InvalidInputError("options.ttlSeconds", "must be a positive number of seconds");
  }
  if (metaKey !== undefined && (typeof metaKey !== "string" || metaKey === "")) {
    throw new InvalidInputError("options.metaKey", "must be a non-empty string");
  }
  if (traceContext !== undefined && typeof traceContext !== "boolean") {
    throw new InvalidInputError("options.traceContext", "must be a boolean");
  }
  return new DelegationTokenTransport(inner, options);
}

/** A JSON-RPC request: a method and an id (a notification has no id, a response no method). */
function isRequest(message: unknown): message is JsonObject {
  if (!isJsonObject(message) || typeof own(message, "method") !== "string") return false;
  const id = own(message, "id");
  return typeof id === "string" || typeof id === "number";
}

/** The active span's W3C trace context, unless the caller's `_meta` already names one. */
function traceContext(meta: JsonObject): Record<string, string> {
  if (own(meta, "traceparent") !== undefined) return {};
  const span = trace.getActiveSpan()?.spanContext();
  if (span === undefined || !isSpanContextValid(span)) return {};
  const flags = (span.traceFlags & 0xff).toString(16).padStart(2, "0");
  const state = span.traceState?.serialize();
  return {
    traceparent: `00-${span.traceId}-${span.spanId}-${flags}`,
    ...(state === undefined || state === "" ? {} : { tracestate: state }),
  };
}

/** When to stop reusing a token: in the last sixth of its life (at most 10 s before `exp`); at once if unreadable. */
function refreshTime(token: string): number {
  try {
    const { exp, iat } = decodeJwt(token);
    if (typeof exp !== "number" || typeof iat !== "number") return 0;
    return exp * 1000 - Math.min(10_000, ((exp - iat) * 1000) / 6);
  } catch {
    return 0;
  }
}
