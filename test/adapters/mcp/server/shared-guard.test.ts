// Servers guarded with one options object — a FastMCP app's sessions, or several McpServers of one process — share
// one guard, and so its plan cache: a plan one server fetched answers the next server's call without the PDP.
import { fileURLToPath } from "node:url";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { beforeAll, describe, expect, test } from "vitest";
import { type GuardMcpServerOptions, guardMcpServer } from "../../../../src/adapters/mcp/index.ts";
import { createGuard } from "../../../../src/index.ts";
import { connectInMemory, filesystemServer } from "../../../support/guarded-server.ts";
import { sharedPdpClient } from "../../../support/pdp.ts";
import { presentingTransport } from "../../../support/presenting-transport.ts";
import { recordingPdp } from "../../../support/recording-pdp.ts";
import { type TokenKeys, tokenKeys } from "../../../support/token-keys.ts";
import { alice } from "../../../support/users.ts";

const pdp = sharedPdpClient();
const policyDir = fileURLToPath(new URL("../../../../policies/", import.meta.url));
let keys: TokenKeys;
let token: string;

beforeAll(async () => {
  keys = await tokenKeys();
  token = await createGuard({ client: pdp }).forUser(alice).toToken(keys.signer, { audience: "filesystem" });
});

async function serve(options: GuardMcpServerOptions) {
  const fixture = filesystemServer();
  guardMcpServer(fixture.server, options);
  const client = await connectInMemory(fixture.server, (transport) =>
    presentingTransport(transport, () => ({ token })),
  );
  const read = async () =>
    (await client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;
  return { read, executions: fixture.executions };
}

describe("guardMcpServer with one options object", () => {
  test("shares one guard: a plan fetched for one server answers the other's call", async () => {
    const recording = recordingPdp(pdp);
    const options: GuardMcpServerOptions = {
      server: "filesystem",
      client: recording,
      tokens: keys.verifier(),
      planCache: { policyDir, watch: false },
    };
    const first = await serve(options);
    const second = await serve(options);
    expect((await first.read()).isError).not.toBe(true);
    // Once the plan is in, neither server asks the PDP about this call again.
    await expect
      .poll(async () => {
        const before = recording.checks.length;
        await first.read();
        return recording.checks.length - before;
      })
      .toBe(0);
    const before = recording.checks.length;
    expect((await second.read()).isError).not.toBe(true);
    expect(recording.checks.length - before).toBe(0);
    expect(second.executions.map((execution) => execution.what)).toEqual(["read_file"]);
  });

  test("a changed option makes a guard of its own", async () => {
    const recording = recordingPdp(pdp);
    const options: GuardMcpServerOptions = {
      server: "filesystem",
      client: recording,
      tokens: keys.verifier(),
      planCache: { policyDir, watch: false },
    };
    const first = await serve(options);
    await first.read();
    await expect
      .poll(async () => {
        const before = recording.checks.length;
        await first.read();
        return recording.checks.length - before;
      })
      .toBe(0);
    options.planCache = { policyDir, watch: false };
    const second = await serve(options);
    const before = recording.checks.length;
    await second.read();
    expect(recording.checks.length - before).toBe(1);
  });
});
