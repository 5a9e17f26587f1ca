import { readFile, stat } from "node:fs/promises";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Value } from "@cerbos/core";
import { deepFreeze } from "../actor.ts";
import { toAttributeRecord } from "../attribute-value.ts";
import { InvalidInputError } from "../errors.ts";
import type { Profile, ProfileResolver } from "./identity-resolvers.ts";

/** A directory of users and agents, by id: what a directory file holds. */
export interface DirectoryData {
  users?: Readonly<Record<string, Profile>> | undefined;
  agents?: Readonly<Record<string, Profile>> | undefined;
}

/** Options for {@link directoryResolver}. */
export interface DirectoryResolverOptions {
  /**
   * Turns the file's text into {@link DirectoryData}. hopguard reads JSON itself and bundles no YAML parser: for a
   * `.yaml` or `.yml` file, pass one (e.g. `parse` from the `yaml` package, or `load` from `js-yaml`).
   *
   * @defaultValue `JSON.parse`; required for `.yaml` and `.yml` files
   */
  parse?: ((text: string) => unknown) | undefined;
}

/** The `user` and `agent` resolvers of one directory: spread them into `createGuard({ identities })`. */
export interface DirectoryResolvers {
  readonly user: ProfileResolver;
  readonly agent: ProfileResolver;
}

interface Directory {
  readonly users: ReadonlyMap<string, Profile>;
  readonly agents: ReadonlyMap<string, Profile>;
}

/**
 * Resolves users and agents from a directory: a JSON file (YAML with a parser of your choice), or an object, shaped
 * `{ users: { alice: { roles, attr } }, agents: { scribe: { roles, attr } } }`.
 *
 * @remarks
 * A file is read on first use and read again whenever it has changed: each look-up compares the file's
 * modification time, change time, size and inode with those of the copy in memory, so an edit (or an atomic
 * replace) is seen by the next look-up that reaches the directory. Behind a guard's cache, that is once the cached
 * answer expires (`identities.cache.ttlMs`, 60 s by default; `cache: false` to see every edit at once, which costs
 * one `stat` per look-up). A file that cannot be read or parsed fails the look-up (`identity_unavailable`) rather
 * than serve an older copy: a user removed from the directory is not kept alive by a half-written file. A relative
 * path is resolved against the working directory. An object is copied when the resolver is made; later changes to
 * it are not seen. Ids match exactly, after Unicode NFC normalization (as the guard normalizes the ids it looks up).
 *
 * @example
 * ```ts
 * import { createGuard, directoryResolver } from "hopguard";
 *
 * // people.json: { "users": { "alice": { "roles": ["user"], "attr": { "department": "engineering" } } },
 * //                "agents": { "scribe": { "roles": ["agent", "writer"] } } }
 * const guard = createGuard({ client: pdp.client, identities: directoryResolver("./people.json") });
 * const scribe = await (await guard.resolveUser("alice")).delegate("scribe");
 * ```
 */
export function directoryResolver(
  source: string | URL | DirectoryData,
  options: DirectoryResolverOptions = {},
): DirectoryResolvers {
  const { parse } = options;
  if (parse !== undefined && typeof parse !== "function") {
    throw new InvalidInputError("options.parse", "must be a function from text to a directory");
  }
  let load: () => Promise<Directory>;
  if (typeof source === "string" || source instanceof URL) {
    const path = source instanceof URL ? fileURLToPath(source) : source;
    const extension = extname(path).toLowerCase();
    if (parse === undefined && (extension === ".yaml" || extension === ".yml")) {
      throw new InvalidInputError(
        "options.parse",
        `${path} is YAML: pass a YAML parser ({ parse } from the "yaml" package, say); hopguard reads JSON only`,
      );
    }
    load = fileLoader(path, parse ?? JSON.parse);
  } else {
    const directory = toDirectory(source, "directory");
    load = () => Promise.resolve(directory);
  }
  const resolver =
    (section: keyof Directory): ProfileResolver =>
    async (id) =>
      (await load())[section].get(String(id).normalize("NFC"));
  return Object.freeze({ user: resolver("users"), agent: resolver("agents") });
}

/** Reads `path` when it has changed since the last read; concurrent look-ups share one read. */
function fileLoader(path: string, parse: (text: string) => unknown): () => Promise<Directory> {
  let current: { readonly stamp: string; readonly directory: Promise<Directory> } | undefined;
  return async () => {
    const stats = await stat(path, { bigint: true });
    // Time stamps alone can miss two edits within the file system's clock resolution; size and inode catch most.
    const stamp = `${stats.mtimeNs}:${stats.ctimeNs}:${stats.size}:${stats.ino}`;
    if (current?.stamp !== stamp) {
      const directory = readFile(path, "utf8").then((text) => toDirectory(parse(text), path));
      const loaded = { stamp, directory };
      current = loaded;
      // A failed read is not kept: the next look-up tries again.
      directory.catch(() => {
        if (current === loaded) current = undefined;
      });
    }
    return current.directory;
  };
}

/** Checks a directory's shape and copies it into frozen maps keyed by NFC-normalized id. */
function toDirectory(data: unknown, where: string): Directory {
  // A JSON snapshot: fresh, plain data (a parser's Dates become strings, as they would on the wire).
  const snapshot = toAttributeRecord(data, where);
  return { users: section(snapshot, "users", where), agents: section(snapshot, "agents", where) };
}

function section(snapshot: Record<string, Value>, name: "users" | "agents", where: string): Map<string, Profile> {
  const entries = snapshot[name];
  const profiles = new Map<string, Profile>();
  if (entries === undefined || entries === null) return profiles;
  if (typeof entries !== "object" || Array.isArray(entries)) {
    throw new InvalidInputError(`${where}.${name}`, "must map ids to { roles, attr }");
  }
  for (const [id, profile] of Object.entries(entries)) {
    if (typeof profile !== "object" || profile === null || Array.isArray(profile)) {
      throw new InvalidInputError(`${where}.${name}.${id}`, "must be { roles, attr }");
    }
    const key = id.normalize("NFC");
    if (profiles.has(key)) {
      throw new InvalidInputError(`${where}.${name}.${id}`, "names the same id as another entry (Unicode NFC)");
    }
    profiles.set(key, deepFreeze(profile) as unknown as Profile);
  }
  return profiles;
}
