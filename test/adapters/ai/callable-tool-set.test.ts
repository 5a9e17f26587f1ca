import { GRPC } from "@cerbos/grpc";
import { generateText, stepCountIs } from "ai";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { agentTool, callableToolSet, guardTools } from "../../../src/adapters/ai/index.ts";
import { createGuard, runAs } from "../../../src/index.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { planner, researcher } from "../../support/users.ts";
import { type FilesystemFixture, startFilesystem } from "./filesystem.ts";
import { requestsTo, scriptedModel, toolResultsSeen } from "./scripted-model.ts";

const guard = createGuard({ client: sharedPdpClient() });
let fs: FilesystemFixture;

beforeAll(async () => {
  fs = await startFilesystem();
});
afterAll(() => fs.close());

const writes = ["write_file", "edit_file", "create_directory", "move_file"];

describe("callableToolSet", () => {
  test("keeps only the tools the chain could call, and the result drives a run", async () => {
    const user = guard.forUser(fs.alice);
    const asUser = await callableToolSet(fs.tools, { server: "filesystem", delegation: user });
    expect(Object.keys(asUser)).toEqual(expect.arrayContaining([...writes, "read_text_file"]));

    const reader = await user.delegate(researcher);
    const asReader = await runAs(reader, () => callableToolSet(fs.tools, { server: "filesystem" }));
    expect(Object.keys(asReader)).toEqual(
      expect.arrayContaining(["read_text_file", "list_directory", "list_allowed_directories"]),
    );
    expect(Object.keys(asReader).filter((name) => writes.includes(name))).toEqual([]);
    expect(asReader.read_text_file).toBe(fs.tools.read_text_file);

    const model = scriptedModel({ calls: [{ id: "c1", tool: "list_allowed_directories", input: {} }] }, { text: "ok" });
    await runAs(reader, () =>
      generateText({
        model,
        tools: guardTools(asReader, { server: "filesystem" }),
        stopWhen: stepCountIs(3),
        prompt: "l",
      }),
    );
    expect(JSON.stringify(toolResultsSeen(requestsTo(model)[1]).get("c1"))).toContain(fs.workspace);
    expect(model.doGenerateCalls[0]?.tools?.map((tool) => tool.name)).not.toContain("write_file");
  });

  test("keeps an agent tool only when every hop may delegate to its agent", async () => {
    const orchestrator = await guard.forUser(fs.alice).delegate(planner);
    const run = async () => "done";
    const tools = {
      research: agentTool(run, { description: "researches", agent: researcher }),
      plan: agentTool(run, { description: "plans", agent: { id: "planner-2", roles: ["agent", "planner"] } }),
    };

    const callable = await callableToolSet(tools, { server: "filesystem", delegation: orchestrator });

    expect(Object.keys(callable)).toEqual(["research"]);
  });

  test("throws rather than guess: no chain, or a PDP that cannot answer", async () => {
    await expect(callableToolSet(fs.tools, { server: "filesystem" })).rejects.toMatchObject({ code: "no_delegation" });
    const unreachable = new GRPC("127.0.0.1:9", { tls: false });
    try {
      const offline = createGuard({ client: unreachable, timeoutMs: 500 }).forUser(fs.alice);
      await expect(callableToolSet(fs.tools, { server: "filesystem", delegation: offline })).rejects.toMatchObject({
        code: "pdp_unavailable",
      });
    } finally {
      unreachable.close();
    }
  });
});
