// Tool listings asked in AuthZEN batches: the same tools as with checkResources, one batch per hop and per
// maxResourcesPerRequest tools, and the fallbacks (no batch, UNIMPLEMENTED, a kind that has no policy).
import { Status } from "@cerbos/core";
import { describe, expect, test } from "vitest";
import { createGuard, type Delegation, type Guard, type PdpClient, type ToolDescriptor } from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "../support/users.ts";
import { countingClient, perHopClient } from "./batch-clients.ts";

const shared = sharedPdpClient();
const tools: ToolDescriptor[] = [
  ...[
    "read_file",
    "read_text_file",
    "write_file",
    "edit_file",
    "move_file",
    "list_directory",
    "list_allowed_directories",
    "create_directory",
    "delete_everything",
  ].map((tool) => ({ server: "filesystem", tool })),
  ...["read_graph", "search_nodes", "create_entities", "add_observations", "delete_entities"].map((tool) => ({
    server: "memory",
    tool,
  })),
  ...["list_notes", "delete_note"].map((tool) => ({
    server: "notes",
    tool,
    annotations: { readOnlyHint: tool === "list_notes" },
  })),
  { server: "filesytem", tool: "read_file" },
];

async function chains(guard: Guard): Promise<Delegation[]> {
  const found: Delegation[] = [];
  for (const user of [alice, bob, ivanTheIntern]) {
    const root = guard.forUser(user);
    found.push(root);
    for (const path of [[planner], [planner, researcher], [planner, scribe], [scribe]]) {
      let chain = root;
      try {
        for (const agent of path) chain = await chain.delegate(agent);
        found.push(chain);
      } catch {
        // A delegation the policies refuse is no chain to list for.
      }
    }
  }
  return found;
}

const listed = async (chain: Delegation) => (await chain.callableTools(tools)).map((t) => `${t.server}/${t.tool}`);

describe("listing in AuthZEN batches", () => {
  test("lists exactly what one checkResources per batch lists, for every chain, in one batch per hop", async () => {
    const { client, sent } = countingClient(shared);
    const batched = await chains(createGuard({ client }));
    const plain = await chains(createGuard({ client: perHopClient(shared) }));
    expect(batched.map((chain) => chain.chain)).toEqual(plain.map((chain) => chain.chain));
    expect(batched.length).toBeGreaterThan(8);
    for (const [index, chain] of batched.entries()) {
      sent.batches.length = 0;
      sent.checks = 0;
      const mine = await listed(chain);
      expect({ chain: chain.chain, tools: mine }).toEqual({
        chain: chain.chain,
        tools: await listed(plain[index] as Delegation),
      });
      // One batch per hop: every tool of it in one request, with an id of its own (no two judged as one group).
      expect(sent.batches).toHaveLength(chain.chain.length);
      for (const batch of sent.batches) {
        const ids = batch.evaluations.map((evaluation) => evaluation.resource?.id);
        expect(new Set(ids).size).toBe(tools.length);
        expect(batch.context).not.toHaveProperty("cerbos.includeMeta");
      }
      // The misspelt kind had no allow in any batch: it alone is asked again, with metadata, once per hop.
      expect(sent.checks).toBe(chain.chain.length);
    }
  });

  test("splits a listing into batches of maxResourcesPerRequest", async () => {
    const { client, sent } = countingClient(shared);
    const chain = createGuard({ client, maxResourcesPerRequest: 5 }).forUser(alice);
    const plain = createGuard({ client: perHopClient(shared), maxResourcesPerRequest: 5 }).forUser(alice);
    expect(await listed(chain)).toEqual(await listed(plain));
    expect(sent.batches.map((batch) => batch.evaluations.length)).toEqual([5, 5, 5, 2]);
  });

  test("a PDP without AuthZEN is listed the checkResources way, and not asked for a batch again", async () => {
    let batches = 0;
    const client: PdpClient = {
      checkResources: (request, options) => shared.checkResources(request, options),
      planResources: (request, options) => shared.planResources(request, options),
      accessEvaluationBatch: async () => {
        batches++;
        throw Object.assign(new Error("unimplemented"), { code: Status.UNIMPLEMENTED });
      },
    };
    const chain = createGuard({ client }).forUser(alice);
    const expected = await listed(createGuard({ client: perHopClient(shared) }).forUser(alice));
    expect(await listed(chain)).toEqual(expected);
    expect(await listed(chain)).toEqual(expected);
    expect(batches).toBe(1);
  });

  test("a batch answer that cannot be read fails the listing closed", async () => {
    for (const answer of [
      { evaluations: [] },
      { evaluations: tools.map(() => ({})) },
      { evaluations: tools.map(() => ({ decision: "yes" })) },
    ]) {
      const client: PdpClient = {
        checkResources: (request, options) => shared.checkResources(request, options),
        planResources: (request, options) => shared.planResources(request, options),
        accessEvaluationBatch: async () => answer as never,
      };
      await expect(createGuard({ client }).forUser(alice).callableTools(tools)).rejects.toMatchObject({
        code: "pdp_unavailable",
      });
    }
  });
});
