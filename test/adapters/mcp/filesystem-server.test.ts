import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { guardMcpClient } from "../../../src/adapters/mcp/index.ts";
import { type ActorInput, createGuard } from "../../../src/index.ts";
import { connectFilesystemServer } from "../../support/mcp.ts";
import { sharedPdpClient } from "../../support/pdp.ts";
import { alice, bob, researcher, scribe } from "../../support/users.ts";

// The real @modelcontextprotocol/server-filesystem over stdio, serving a temp folder that is the users' workspace.
const workspace = realpathSync(mkdtempSync(join(tmpdir(), "hopguard-mcp-fs-")));
const aliceHere: ActorInput = { ...alice, attr: { ...alice.attr, workspace } };
const bobHere: ActorInput = { ...bob, attr: { ...bob.attr, workspace } };
const guard = createGuard({ client: sharedPdpClient() });
let client: Client;

beforeAll(async () => {
  writeFileSync(join(workspace, "notes.md"), "hop by hop\n");
  client = await connectFilesystemServer([workspace]);
});

afterAll(async () => {
  await client?.close();
  rmSync(workspace, { recursive: true, force: true });
});

const text = (result: Awaited<ReturnType<Client["callTool"]>>): string =>
  (result.content as { type: string; text?: string }[]).map((part) => part.text ?? "").join("");

describe("guardMcpClient over server-filesystem", () => {
  test("an allowed read returns the file's real content", async () => {
    const filesystem = guardMcpClient(client, {
      server: "filesystem",
      delegation: await guard.forUser(aliceHere).delegate(researcher),
    });

    const result = await filesystem.callTool({
      name: "read_text_file",
      arguments: { path: join(workspace, "notes.md") },
    });

    expect(result.isError).toBeFalsy();
    expect(text(result)).toContain("hop by hop");
  });

  test("an agent without the writer role cannot write for an engineer: no file appears", async () => {
    const path = join(workspace, "by-researcher.md");
    const filesystem = guardMcpClient(client, {
      server: "filesystem",
      delegation: await guard.forUser(aliceHere).delegate(researcher),
    });

    const result = await filesystem.callTool({ name: "write_file", arguments: { path, content: "x" } });

    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^hopguard refused filesystem\/write_file: denied by agent "researcher"/);
    expect(existsSync(path)).toBe(false);
  });

  test("a writer agent for the same engineer does write the file", async () => {
    const path = join(workspace, "by-scribe.md");
    const filesystem = guardMcpClient(client, {
      server: "filesystem",
      delegation: await guard.forUser(aliceHere).delegate(scribe),
    });

    const result = await filesystem.callTool({ name: "write_file", arguments: { path, content: "written" } });

    expect(result.isError).toBeFalsy();
    expect(readFileSync(path, "utf8")).toBe("written");
  });

  test("a sales user may not write, even in their own workspace", async () => {
    const path = join(workspace, "by-bob.md");
    const filesystem = guardMcpClient(client, { server: "filesystem", delegation: guard.forUser(bobHere) });

    const result = await filesystem.callTool({ name: "write_file", arguments: { path, content: "x" } });

    expect(result.isError).toBe(true);
    expect(text(result)).toContain('denied by user "bob"');
    expect(existsSync(path)).toBe(false);
  });

  test("listTools shows an engineer the write tools and hides them from a researcher acting for her", async () => {
    const user = guardMcpClient(client, { server: "filesystem", delegation: guard.forUser(aliceHere) });
    const agent = guardMcpClient(client, {
      server: "filesystem",
      delegation: await guard.forUser(aliceHere).delegate(researcher),
    });
    const writeTools = ["write_file", "edit_file", "create_directory", "move_file"];

    const [userTools, agentTools] = await Promise.all([
      user.listTools().then(({ tools }) => tools.map((tool) => tool.name)),
      agent.listTools().then(({ tools }) => tools.map((tool) => tool.name)),
    ]);

    expect(userTools).toEqual(expect.arrayContaining([...writeTools, "read_text_file"]));
    expect(agentTools).toEqual(
      expect.arrayContaining(["read_text_file", "list_directory", "list_allowed_directories"]),
    );
    for (const tool of writeTools) expect(agentTools).not.toContain(tool);
  });
});
