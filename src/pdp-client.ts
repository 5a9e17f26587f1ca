import type { Client } from "@cerbos/core";

/**
 * The part of a Cerbos client hopguard uses. Any `@cerbos/grpc` `GRPC` (or `@cerbos/http` `HTTP`) client fits; a
 * unit test can fake exactly this seam. `planResources` is only used to list the tools a chain could call.
 */
export type PdpClient = Pick<Client, "checkResources" | "planResources">;
