import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { guardMcpClient } from "../../../src/adapters/mcp/index.ts";
import { createGuard } from "../../../src/index.ts";
import { connectMemoryServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { alice, planner, scribe } from "../../support/users.ts";

// The real @modelcontextprotocol/server-memory over stdio, keeping its graph in a temp file.
const folder = mkdtempSync(join(tmpdir(), "hopguard-mcp-memory-"));
const guard = createGuard({ client: sharedPdpClient() });
let client: Client;

beforeAll(async () => {
  client = await connectMemoryServer(join(folder, "memory.jsonl"));
});

afterAll(async () => {
  await client?.close();
  rmSync(folder, { recursive: true, force: true });
});

const graphEntities = async (memory: Client): Promise<string[]> => {
  const result = await memory.callTool({ name: "read_graph", arguments: {} });
  expect(result.isError).toBeFalsy();
  return (result.structuredContent as { entities: { name: string }[] }).entities.map((entity) => entity.name);
};

describe("guardMcpClient over server-memory", () => {
  test("a writer agent records an entity for alice, and read_graph returns it; a planner cannot delete it", async () => {
    const writer = guardMcpClient(client, {
      server: "memory",
      delegation: await guard.forUser(alice).delegate(scribe),
    });
    const orchestrator = guardMcpClient(client, {
      server: "memory",
      delegation: await guard.forUser(alice).delegate(planner),
    });

    const created = await writer.callTool({
      name: "create_entities",
      arguments: { entities: [{ name: "hopguard", entityType: "project", observations: ["checks every hop"] }] },
    });
    expect(created.isError).toBeFalsy();
    expect(await graphEntities(writer)).toContain("hopguard");

    const deleted = await orchestrator.callTool({ name: "delete_entities", arguments: { entityNames: ["hopguard"] } });
    expect(deleted.isError).toBe(true);
    expect(JSON.stringify(deleted.content)).toContain('denied by agent \\"planner\\"');
    expect(await graphEntities(orchestrator)).toContain("hopguard");
  });
});
