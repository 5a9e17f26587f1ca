import type { TestProject } from "vitest/node";
import { startLocalPdp } from "../../src/local-pdp.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** gRPC address of the PDP started for this run with the repo's policies/. */
    pdpGrpcAddress: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pdp = await startLocalPdp();
  project.provide("pdpGrpcAddress", pdp.grpcAddress);
  return () => pdp.stop();
}
