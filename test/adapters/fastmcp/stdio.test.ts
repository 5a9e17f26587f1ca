import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { beforeAll, describe, expect, inject, test } from "vitest";
import { delegationTokenTransport } from "../../../src/adapters/mcp/index.ts";
import { type ActorInput, createGuard, type Delegation } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { type TokenKeys, tokenKeys } from "../../support/token-keys.ts";
import { alice, bob, planner } from "../../support/users.ts";
import type { Execution } from "./filesystem-app.ts";

const fixture = fileURLToPath(new URL("./stdio-app.ts", import.meta.url));
const host = createGuard({ client: sharedPdpClient() });

let keys: TokenKeys;
let alicePlanner: Delegation;

beforeAll(async () => {
  keys = await tokenKeys();
  alicePlanner = await host.forUser(alice).delegate(planner);
});

/** Spawns the guarded FastMCP app as its own process, authenticated on stdio as `person`, and connects a client. */
async function spawnApp(
  person: ActorInput | undefined,
  wrap: (transport: Transport) => Transport = (transport) => transport,
) {
  const log = join(tempDir("hopguard-fastmcp-"), "executions.jsonl");
  const client = new Client({ name: "hopguard-test", version: "0.0.0" });
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    HOPGUARD_PDP: inject("pdpGrpcAddress"),
    HOPGUARD_JWKS: JSON.stringify({ keys: [keys.publicJwk] }),
    HOPGUARD_LOG: log,
  };
  if (person !== undefined) env.HOPGUARD_USER = JSON.stringify(person);
  await client.connect(
    wrap(new StdioClientTransport({ command: process.execPath, args: [fixture], env, stderr: "inherit" })),
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

const names = (items: readonly { name: string }[]) => items.map((item) => item.name);

describe("guardFastMCP over stdio, FastMCP's own start(), in its own process", () => {
  test("requests made the moment the client is connected are already guarded: FastMCP's start-up is held", async () => {
    // FastMCP announces a stdio session only after the client initialized; these requests race that announcement.
    const { client, executions } = await spawnApp(bob);

    const [listed, refused, read] = await Promise.all([
      client.listTools(),
      client.callTool({ name: "write_file", arguments: { path: "/workspace/bob/plan.md", content: "x" } }),
      client.callTool({ name: "read_file", arguments: { path: "/workspace/bob/plan.md" } }),
    ]);

    expect(names(listed.tools)).toEqual(["read_file"]);
    expect((refused as CallToolResult)._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "bob" });
    expect((read as CallToolResult).content).toEqual([{ type: "text", text: "contents of /workspace/bob/plan.md" }]);
    expect(executions()).toEqual([expect.objectContaining({ what: "read_file", chain: ["bob"] })]);
    await client.close();
  });

  test("alice and bob, as authenticate says on stdio, see different tools; bob's write never runs", async () => {
    const alices = await spawnApp(alice);
    const bobs = await spawnApp(bob);

    const aliceTools = names((await alices.client.listTools()).tools);
    const bobTools = names((await bobs.client.listTools()).tools);
    const refused = (await bobs.client.callTool({
      name: "write_file",
      arguments: { path: "/workspace/bob/plan.md", content: "x" },
    })) as CallToolResult;
    await alices.client.callTool({ name: "write_file", arguments: { path: "/workspace/alice/plan.md", content: "x" } });
    const bobsPrompts = names((await bobs.client.listPrompts()).prompts);
    const bobsRead = await bobs.client.readResource({ uri: "file:///workspace/alice/notes.md" }).catch((e) => e);

    expect(aliceTools).toEqual(["read_file", "write_file"]);
    expect(bobTools).toEqual(["read_file"]);
    expect(refused._meta?.["hopguard.dev/refusal"]).toMatchObject({ deniedBy: "bob" });
    expect(bobsPrompts).toEqual(["sales_pitch"]);
    expect(bobsRead).toBeInstanceOf(Error);
    expect(bobs.executions()).toEqual([]);
    expect(alices.executions()).toEqual([expect.objectContaining({ what: "write_file", chain: ["alice"] })]);
    await Promise.all([alices.client.close(), bobs.client.close()]);
  });

  test("with no user, only a delegation token acts: alice's planner reads, a token-less call is refused", async () => {
    const planners = await spawnApp(undefined, (transport) =>
      delegationTokenTransport(transport, { signer: keys.signer, audience: "filesystem", delegation: alicePlanner }),
    );
    const anonymous = await spawnApp(undefined);

    const tools = names((await planners.client.listTools()).tools);
    await planners.client.callTool({ name: "read_file", arguments: { path: "/workspace/alice/notes.md" } });
    const refused = (await anonymous.client.callTool({
      name: "read_file",
      arguments: { path: "/workspace/alice/notes.md" },
    })) as CallToolResult;

    expect(tools).toEqual(["read_file"]);
    expect(planners.executions()).toEqual([
      expect.objectContaining({ what: "read_file", chain: ["alice", "planner"] }),
    ]);
    expect(refused.isError).toBe(true);
    expect(anonymous.executions()).toEqual([]);
    await Promise.all([planners.client.close(), anonymous.client.close()]);
  });
});
