import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { type CallToolResult, McpError } from "@modelcontextprotocol/sdk/types.js";
import { beforeAll, describe, expect, inject, test } from "vitest";
import { delegationTokenTransport, type McpRefusal } from "../../../../src/adapters/mcp/index.ts";
import { createGuard, type Delegation } from "../../../../src/index.ts";
import type { Execution } from "../../../support/guarded-server.ts";
import { sharedPdpClient } from "../../../support/pdp.ts";
import { tempDir } from "../../../support/temp-dir.ts";
import { type TokenKeys, tokenKeys } from "../../../support/token-keys.ts";
import { alice, bob, planner } from "../../../support/users.ts";

const fixture = fileURLToPath(new URL("../../../support/guarded-stdio-server.ts", import.meta.url));
const host = createGuard({ client: sharedPdpClient() });

let keys: TokenKeys;
let alicePlanner: Delegation;

beforeAll(async () => {
  keys = await tokenKeys();
  alicePlanner = await host.forUser(alice).delegate(planner);
});

/** Spawns the guarded server as its own process (`node guarded-stdio-server.ts`) and connects an SDK client. */
async function spawnGuarded(wrap: (transport: Transport) => Transport = (transport) => transport) {
  const log = join(tempDir("hopguard-stdio-"), "executions.jsonl");
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  await client.connect(
    wrap(
      new StdioClientTransport({
        command: process.execPath,
        args: [fixture],
        env: {
          ...(process.env as Record<string, string>),
          HOPGUARD_PDP: inject("pdpGrpcAddress"),
          HOPGUARD_JWKS: JSON.stringify({ keys: [keys.publicJwk] }),
          HOPGUARD_LOG: log,
        },
        stderr: "inherit",
      }),
    ),
  );
  const executions = (): Execution[] =>
    existsSync(log)
      ? readFileSync(log, "utf8")
          .split("\n")
          .filter((line) => line !== "")
          .map((line) => JSON.parse(line))
      : [];
  return { client, executions };
}

describe("guardMcpServer over stdio, in its own process", () => {
  test("alice's planner reads through its token; bob's write and a request with no token never run", async () => {
    const planners = await spawnGuarded((transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );
    const bobs = await spawnGuarded((transport) =>
      delegationTokenTransport(transport, {
        signer: keys.signer,
        audience: "filesystem",
        delegation: host.forUser(bob),
      }),
    );
    const anonymous = await spawnGuarded();

    const read = await planners.client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    });
    const write = (await bobs.client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/a.md", content: "x" },
    })) as CallToolResult;
    const prompt = await anonymous.client.getPrompt({ name: "code_review" }).catch((error: unknown) => error);

    expect(read.isError).toBeFalsy();
    expect(planners.executions()).toEqual([
      expect.objectContaining({
        what: "read_file",
        chain: ["alice", "planner"],
        arguments: { path: "/workspace/alice/notes.md" },
      }),
    ]);
    expect(write.isError).toBe(true);
    expect(write._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "bob" } satisfies Partial<McpRefusal>);
    expect(bobs.executions()).toEqual([]);
    expect(prompt).toBeInstanceOf(McpError);
    expect((prompt as McpError).data).toMatchObject({ hopguard: { code: "token_missing" } });
    expect(anonymous.executions()).toEqual([]);
    await Promise.all([planners.client.close(), bobs.client.close(), anonymous.client.close()]);
  });
});
