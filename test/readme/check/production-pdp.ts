import { strict as assert } from "node:assert";
import type { GRPC } from "@cerbos/grpc";
import { type Guard, PdpUnavailableError } from "hopguard";

// cerbos.internal does not resolve here: both guards fail closed, within their timeoutMs.
export default async function check(block: Record<string, unknown>): Promise<void> {
  const { grpc, guard, viaHttp } = block as { grpc: GRPC; guard: Guard; viaHttp: Guard };
  for (const each of [guard, viaHttp]) {
    const refused = await each
      .forUser({ id: "alice", roles: ["user"] })
      .authorize({ server: "filesystem", tool: "read_file", arguments: {} })
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    assert.ok(PdpUnavailableError.isInstance(refused), String(refused));
  }
  grpc.close();
}
