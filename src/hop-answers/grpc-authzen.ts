import { createRequire } from "node:module";
import type { AuthZenBatchClient } from "../pdp-client.ts";
import type { AccessEvaluationBatchRequest, AccessEvaluationBatchResponse } from "./authzen-messages.ts";
import { accessEvaluationBatchPath, decodeBatchResponse, encodeBatchRequest } from "./authzen-wire.ts";

// `@cerbos/grpc` 0.27 has no AuthZEN method, but its `GRPC` client holds a `@grpc/grpc-js` channel (field `client`)
// that can carry any method, and `@cerbos/core`'s `Client` merges the headers every request gets (`mergeHeaders`:
// the `headers` option, playground instance). Sending the batch there reuses the connection, its TLS and its headers,
// with nothing new to configure. Both are private members: when either is missing (another transport, another
// version) there is no batch and every hop gets its own `checkResources`, as before.

/** What hopguard uses of a `@grpc/grpc-js` `Client`. */
interface GrpcChannelClient {
  makeUnaryRequest(
    method: string,
    serialize: (value: Buffer) => Buffer,
    deserialize: (value: Buffer) => Buffer,
    argument: Buffer,
    metadata: GrpcMetadata,
    callback: (error: Error | null, response?: Buffer) => void,
  ): { cancel(): void };
}

interface GrpcMetadata {
  set(key: string, value: string): void;
}

/** The private parts of a `@cerbos/grpc` `GRPC` client hopguard relies on; see the note above. */
interface CerbosGrpcInternals {
  client?: unknown;
  mergeHeaders?: unknown;
  options?: { onValidationError?: unknown } | undefined;
}

// Only the service's name matters to `mergeHeaders` (admin credentials go to the admin service alone).
const authZenMethod = {
  parent: { typeName: "authzen.authorization.v1.AuthorizationService" },
  name: "AccessEvaluationBatch",
};

const identity = (bytes: Buffer): Buffer => bytes;

/**
 * An {@link AuthZenBatchClient} over the channel of a `@cerbos/grpc` `GRPC` client, or `undefined` when `client` is
 * not one hopguard can send a batch through.
 *
 * @remarks
 * A client configured with `onValidationError` gets none either: schema validation errors reach that callback only
 * through `checkResources`.
 */
export function grpcAuthZen(client: object): AuthZenBatchClient | undefined {
  const internals = client as CerbosGrpcInternals;
  const channel = internals.client as GrpcChannelClient | undefined;
  if (typeof channel?.makeUnaryRequest !== "function" || typeof internals.mergeHeaders !== "function") return;
  if (internals.options?.onValidationError !== undefined) return;
  const grpc = cerbosGrpcJs();
  // A channel from another copy of @grpc/grpc-js would take this copy's Metadata for call options, headers lost.
  if (grpc === undefined || !(channel instanceof grpc.Client)) return;
  const { Metadata } = grpc;
  const mergeHeaders = internals.mergeHeaders as (
    override: undefined,
    method: typeof authZenMethod,
  ) => Promise<Headers>;
  return {
    async accessEvaluationBatch(
      request: AccessEvaluationBatchRequest,
      { signal }: { signal: AbortSignal },
    ): Promise<AccessEvaluationBatchResponse> {
      const bytes = encodeBatchRequest(request);
      const headers = await mergeHeaders.call(client, undefined, authZenMethod);
      const metadata = new Metadata();
      for (const [name, value] of headers) metadata.set(name, value);
      const answer = await new Promise<Buffer>((resolve, reject) => {
        signal.throwIfAborted();
        let call: { cancel(): void } | undefined;
        const cancel = (): void => call?.cancel();
        signal.addEventListener("abort", cancel, { once: true });
        try {
          call = channel.makeUnaryRequest(
            accessEvaluationBatchPath,
            identity,
            identity,
            Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            metadata,
            (error, response) => {
              signal.removeEventListener("abort", cancel);
              if (error !== null) reject(error);
              else if (response === undefined) reject(new Error("no response received"));
              else resolve(response);
            },
          );
        } catch (error) {
          // A closed channel throws at once.
          signal.removeEventListener("abort", cancel);
          reject(error);
        }
      });
      return decodeBatchResponse(answer);
    },
  };
}

interface GrpcJs {
  Client: abstract new (...args: never[]) => unknown;
  Metadata: new () => GrpcMetadata;
}

let loaded: GrpcJs | null | undefined;

/**
 * The copy of `@grpc/grpc-js` that `@cerbos/grpc` loads, resolved from its own folder (so hopguard declares no
 * dependency of its own on it): the channel tells metadata from call options with `instanceof`, so only that copy's
 * `Metadata` will do.
 */
function cerbosGrpcJs(): GrpcJs | undefined {
  if (loaded === undefined) {
    try {
      const cerbosGrpc = createRequire(import.meta.url).resolve("@cerbos/grpc");
      const grpc = createRequire(cerbosGrpc)("@grpc/grpc-js") as Partial<GrpcJs>;
      loaded = typeof grpc.Client === "function" && typeof grpc.Metadata === "function" ? (grpc as GrpcJs) : null;
    } catch {
      loaded = null;
    }
  }
  return loaded ?? undefined;
}
