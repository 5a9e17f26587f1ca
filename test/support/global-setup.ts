import type { TestProject } from "vitest/node";
import { startLocalPdp } from "../../src/local-pdp.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** gRPC address of the PDP started for this run with the repo's policies/. */
    pdpGrpcAddress: string;
    /** HTTP address (`http://host:port`) of the same PDP. */
    pdpHttpAddress: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pdp = await startLocalPdp();
  project.provide("pdpGrpcAddress", pdp.grpcAddress);
  project.provide("pdpHttpAddress", pdp.httpAddress);
  return () => pdp.stop();
}
