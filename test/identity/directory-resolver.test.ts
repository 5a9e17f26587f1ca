import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createGuard, type DirectoryData, directoryResolver, IdentityError } from "../../src/index.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { recordingPdp } from "../support/recording-pdp.ts";
import { alice, bob, scribe } from "../support/users.ts";

const signal = new AbortController().signal;
const people: DirectoryData = {
  users: {
    alice: { roles: alice.roles, attr: alice.attr },
    bob: { roles: bob.roles, attr: bob.attr },
  },
  agents: { scribe: { roles: scribe.roles } },
};
const writeNotes = (user: string) => ({
  server: "filesystem",
  tool: "write_file",
  arguments: { path: `/workspace/${user}/notes.md`, content: "x" },
});

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "hopguard-directory-"));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe("directoryResolver", () => {
  test("reads users and agents from a JSON file; an id it does not hold is unknown", async () => {
    const file = join(folder, "people.json");
    await writeFile(file, JSON.stringify(people));
    const directory = directoryResolver(file);

    expect(await directory.user("alice", { signal })).toEqual({ roles: ["user"], attr: alice.attr });
    expect(await directory.agent("scribe", { signal })).toEqual({ roles: ["agent", "writer"] });
    expect(await directory.user("scribe", { signal })).toBeUndefined();
    expect(await directory.agent("alice", { signal })).toBeUndefined();
    // Names an object inherits are not entries.
    expect(await directory.user("constructor", { signal })).toBeUndefined();
    expect(await directory.user("__proto__", { signal })).toBeUndefined();
  });

  test("an edit to the file, or a replacement of it, is seen by the next look-up", async () => {
    const file = join(folder, "changing.json");
    await writeFile(file, JSON.stringify(people));
    const directory = directoryResolver(pathToFileURL(file));
    expect(await directory.user("bob", { signal })).toMatchObject({ attr: { department: "sales" } });

    await writeFile(file, JSON.stringify({ users: { bob: { roles: ["user"], attr: { department: "engineering" } } } }));
    expect(await directory.user("bob", { signal })).toEqual({ roles: ["user"], attr: { department: "engineering" } });
    expect(await directory.user("alice", { signal })).toBeUndefined();

    const next = join(folder, "changing.next.json");
    await writeFile(next, JSON.stringify({ users: { carol: { roles: ["user"] } } }));
    await rename(next, file);
    expect(await directory.user("carol", { signal })).toEqual({ roles: ["user"] });
    expect(await directory.user("bob", { signal })).toBeUndefined();
  });

  test("a file that cannot be read or parsed fails the look-up; fixing it recovers", async () => {
    const file = join(folder, "broken.json");
    await writeFile(file, '{ "users": { "alice": ');
    const directory = directoryResolver(file);
    await expect(directory.user("alice", { signal })).rejects.toThrow(SyntaxError);

    await writeFile(file, JSON.stringify({ users: ["alice"] }));
    await expect(directory.user("alice", { signal })).rejects.toMatchObject({ path: `${file}.users` });

    await writeFile(file, JSON.stringify(people));
    expect(await directory.user("alice", { signal })).toMatchObject({ roles: ["user"] });
    await expect(directoryResolver(join(folder, "missing.json")).user("alice", { signal })).rejects.toMatchObject({
      code: "ENOENT",
    });
  });

  test("YAML needs a parser of your choice; with one, the file is read through it", async () => {
    const file = join(folder, "people.yaml");
    // JSON is YAML: a stand-in for a real YAML parser (hopguard bundles none).
    await writeFile(file, JSON.stringify(people));
    expect(() => directoryResolver(file)).toThrow(expect.objectContaining({ path: "options.parse" }));
    const parsed: string[] = [];
    const directory = directoryResolver(file, {
      parse: (text) => {
        parsed.push(text);
        return JSON.parse(text);
      },
    });

    expect(await directory.agent("scribe", { signal })).toEqual({ roles: ["agent", "writer"] });
    expect(await directory.agent("scribe", { signal })).toEqual({ roles: ["agent", "writer"] });
    expect(parsed).toHaveLength(1);
  });

  test("an object is copied when the resolver is made, and its ids are matched after NFC normalization", async () => {
    const source = { users: { "Jos\u0065\u0301": { roles: ["user"] } } };
    const directory = directoryResolver(source);
    source.users["Jos\u0065\u0301"].roles.push("admin");

    expect(await directory.user("Jos\u00e9", { signal })).toEqual({ roles: ["user"] });
    expect(() =>
      directoryResolver({ users: { "Jos\u00e9": { roles: ["user"] }, "Jos\u0065\u0301": { roles: ["user"] } } }),
    ).toThrow(/names the same id as another entry/);
    expect(() => directoryResolver({ agents: { scribe: ["agent"] } } as never)).toThrow(/must be \{ roles, attr \}/);
  });

  test("behind a guard: ids alone decide from the file, and an edit is seen once the cache lets it", async () => {
    const file = join(folder, "guarded.json");
    await writeFile(file, JSON.stringify(people));
    const pdp = recordingPdp(sharedPdpClient());
    const guard = createGuard({ client: pdp, identities: { ...directoryResolver(file), cache: false } });

    const bobWrites = async () => (await (await guard.resolveUser("bob")).authorize(writeNotes("bob"))).allowed;
    expect(await bobWrites()).toBe(false);
    await writeFile(
      file,
      JSON.stringify({ users: { bob: { roles: ["user"], attr: { ...bob.attr, department: "engineering" } } } }),
    );
    expect(await bobWrites()).toBe(true);
    expect(pdp.checks.map((check) => check.principal.attr?.department)).toEqual(["sales", "engineering"]);

    await writeFile(file, JSON.stringify({ users: {} }));
    const error = await guard.resolveUser("bob").catch((thrown: unknown) => thrown);
    expect(IdentityError.isInstance(error) && error.code).toBe("identity_unknown");
    expect(pdp.checks).toHaveLength(2);
  });
});
