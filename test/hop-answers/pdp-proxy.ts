import {
  Client,
  credentials,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  type status,
} from "@grpc/grpc-js";
import { accessEvaluationBatchPath } from "../../src/hop-answers/authzen-wire.ts";

/** What the proxy does with an AuthZEN batch: forward it, or answer it itself (bytes, or a gRPC status). */
export type BatchAnswer =
  | { forward: true }
  | { bytes: Uint8Array }
  | { code: status; details: string }
  | { never: true };

export interface PdpProxy {
  /** `host:port` to point a `@cerbos/grpc` client at. */
  readonly address: string;
  /** Every AuthZEN batch the proxy received: its bytes and the headers it came with. */
  readonly batches: { bytes: Buffer; metadata: Record<string, unknown> }[];
  /** How many checkResources requests went through. */
  readonly checks: () => number;
  /** Decides the answer to each batch from now on (default: forward to the real PDP). */
  answerBatches(answer: (request: Buffer) => BatchAnswer | Promise<BatchAnswer>): void;
  close(): Promise<void>;
}

const cerbosMethods = ["/cerbos.svc.v1.CerbosService/CheckResources", "/cerbos.svc.v1.CerbosService/PlanResources"];
const bytes = (value: Buffer): Buffer => value;

/**
 * A gRPC proxy in front of the real PDP: it forwards Cerbos's own methods untouched and serves the AuthZEN batch as a
 * test says — forwarded, answered with chosen bytes or status, or (with `authZen: false`) not at all, so that the
 * client gets gRPC's own `UNIMPLEMENTED`, as from a Cerbos older than 0.48.
 */
export async function startPdpProxy(target: string, options: { authZen: boolean }): Promise<PdpProxy> {
  const upstream = new Client(target, credentials.createInsecure());
  const server = new Server();
  const batches: PdpProxy["batches"] = [];
  let checks = 0;
  let answer: (request: Buffer) => BatchAnswer | Promise<BatchAnswer> = () => ({ forward: true });
  const forward = (path: string, request: Buffer, callback: sendUnaryData<Buffer>): void => {
    upstream.makeUnaryRequest(path, bytes, bytes, request, new Metadata(), (error, response) =>
      error ? callback(error) : callback(null, response),
    );
  };
  for (const path of cerbosMethods) {
    server.register(
      path,
      (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        if (path.endsWith("CheckResources")) checks++;
        forward(path, call.request, callback);
      },
      bytes,
      bytes,
      "unary",
    );
  }
  if (options.authZen) {
    server.register(
      accessEvaluationBatchPath,
      async (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        batches.push({ bytes: call.request, metadata: call.metadata.getMap() });
        const chosen = await answer(call.request);
        if ("forward" in chosen) forward(accessEvaluationBatchPath, call.request, callback);
        else if ("bytes" in chosen) callback(null, Buffer.from(chosen.bytes));
        else if ("code" in chosen) callback({ code: chosen.code, details: chosen.details });
        // "never": the call is left hanging, as a PDP that froze mid-answer.
      },
      bytes,
      bytes,
      "unary",
    );
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    batches,
    checks: () => checks,
    answerBatches(choose) {
      answer = choose;
    },
    close: async () => {
      upstream.close();
      server.forceShutdown();
    },
  };
}
