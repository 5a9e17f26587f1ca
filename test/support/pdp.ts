import { GRPC } from "@cerbos/grpc";
import { afterAll, inject } from "vitest";

/** A client for the run's shared PDP (see global-setup.ts), closed after the file's tests. */
export function sharedPdpClient(): GRPC {
  const client = new GRPC(inject("pdpGrpcAddress"), { tls: false });
  afterAll(() => client.close());
  return client;
}
