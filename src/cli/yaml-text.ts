/**
 * Pieces of YAML text for the files `hopguard init` writes. Every string is written as a JSON string, which YAML
 * reads as a double-quoted scalar with the same value: a tool name or URI from a server can never break out of it.
 */

/** A string as a YAML (and CEL) double-quoted literal. */
export function quote(value: string): string {
  return JSON.stringify(value);
}

/**
 * A string as a YAML scalar that keeps double quotes readable: single-quoted when it can be (a CEL expression such as
 * `"agent" in P.roles`), else {@link quote}d.
 */
export function scalar(value: string): string {
  return /^[^'\p{Cc}\p{Cf}\u2028\u2029]*$/u.test(value) ? `'${value}'` : quote(value);
}

const plainKey = /^[A-Za-z_][A-Za-z0-9_]*$/;
// YAML 1.1 readers (Cerbos's among them) take these plain words as booleans or null, even as keys.
const specialWord = /^(?:y|n|yes|no|on|off|true|false|null)$/i;

/** A JSON-like value as one line of YAML flow style: `{ id: "alice", roles: ["user"] }`. */
export function flow(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(flow).join(", ")}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, field]) => field !== undefined);
  if (entries.length === 0) return "{}";
  const fields = entries.map(
    ([key, field]) => `${plainKey.test(key) && !specialWord.test(key) ? key : quote(key)}: ${flow(field)}`,
  );
  return `{ ${fields.join(", ")} }`;
}

/** A block list, one `- item` per line at `indent` spaces, each with its comment when `note` gives one. */
export function blockList(items: readonly string[], indent: number, note?: (item: string) => string): string {
  const pad = " ".repeat(indent);
  return items
    .map((item) => {
      const text = note?.(item) ?? "";
      return `${pad}- ${quote(item)}${text === "" ? "" : `  ${comment([text])}`}`;
    })
    .join("\n");
}

/** A `#` comment block, each line prefixed; a line break inside a line (say, in a server's name) becomes a space. */
export function comment(lines: readonly string[], indent = 0): string {
  const pad = " ".repeat(indent);
  return lines
    .map((line) => line.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, " "))
    .map((line) => (line === "" ? `${pad}#` : `${pad}# ${line}`))
    .join("\n");
}
