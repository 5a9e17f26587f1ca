/**
 * A reader for the YAML that Cerbos policies are written in: block and flow collections, plain, quoted and block
 * scalars, comments, several documents per file.
 *
 * @remarks
 * It exists so that hopguard can learn, from the policies themselves, which (kind, action) pairs a plan may answer
 * (see `policy-profile.ts`). It fails closed: anchors, aliases, tags, complex keys, directives, tabs in indentation,
 * duplicate keys and anything else it does not understand throw {@link PolicyYamlError}, and the caller then answers
 * every hop live. Scalars stay strings (or `null`); nothing here needs YAML's type resolution.
 */
export class PolicyYamlError extends Error {
  override readonly name = "PolicyYamlError";
}

/** A YAML value as this reader builds it. */
export type YamlValue = string | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  readonly number: number;
  readonly indent: number;
  /** The line without its indentation. */
  readonly text: string;
}

/** Reads every document of a YAML file. */
export function parsePolicyYaml(source: string): YamlValue[] {
  const text = source.startsWith("\uFEFF") ? source.slice(1) : source;
  const documents: Line[][] = [[]];
  text.split(/\r?\n/).forEach((raw, index) => {
    const number = index + 1;
    const indentation = /^[ \t]*/.exec(raw)?.[0] ?? "";
    if (indentation.includes("\t") && raw.trim() !== "") fail(number, "tabs in indentation");
    const body = raw.slice(indentation.length);
    if (indentation === "" && /^%/.test(body)) fail(number, "directives");
    if (indentation === "" && /^(---|\.\.\.)(\s|$)/.test(body)) {
      const rest = stripComment(body.slice(3)).trim();
      if (rest !== "") fail(number, "content after a document marker");
      if (body.startsWith("---")) documents.push([]);
      return;
    }
    (documents[documents.length - 1] as Line[]).push({ number, indent: indentation.length, text: body });
  });
  const values: YamlValue[] = [];
  for (const lines of documents) {
    if (lines.every((line) => isBlank(line.text))) continue;
    const reader = new BlockReader(lines);
    values.push(reader.document());
  }
  return values;
}

function fail(line: number, what: string): never {
  throw new PolicyYamlError(`line ${line}: ${what} are not supported`);
}

function isBlank(text: string): boolean {
  return text.trim() === "" || text.trimStart().startsWith("#");
}

/** Removes a trailing comment (a `#` after white space, outside quotes). */
function stripComment(text: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quote !== undefined) {
      if (quote === "'" && char === "'" && text[i + 1] === "'") i++;
      else if (quote === '"' && char === "\\") i++;
      else if (char === quote) quote = undefined;
    } else if (char === "#" && (i === 0 || text[i - 1] === " " || text[i - 1] === "\t")) {
      return text.slice(0, i).trimEnd();
    } else if ((char === '"' || char === "'") && (i === 0 || /[\s[{,:]/.test(text[i - 1] as string))) {
      quote = char;
    }
  }
  return text.trimEnd();
}

const indicatorStart = /^[&*!|>%@`?]/;

class BlockReader {
  #position = 0;
  readonly #lines: Line[];

  constructor(lines: Line[]) {
    this.#lines = lines;
  }

  document(): YamlValue {
    const first = this.#next();
    if (first === undefined) return null;
    const value = this.#node(first.indent);
    const extra = this.#next();
    if (extra !== undefined) fail(extra.number, "content outside the document's structure");
    return value;
  }

  /** The next line with content, skipped to; `undefined` at the end. */
  #next(): Line | undefined {
    while (this.#position < this.#lines.length) {
      const line = this.#lines[this.#position] as Line;
      if (!isBlank(line.text)) return line;
      this.#position++;
    }
    return undefined;
  }

  /** A node whose first line is the current line, at `indent`. */
  #node(indent: number): YamlValue {
    const line = this.#next() as Line;
    if (line.indent !== indent) fail(line.number, "unexpected indentation");
    if (isSequenceEntry(line.text)) return this.#sequence(indent);
    if (mappingKey(line.text, line.number) !== undefined) return this.#mapping(indent);
    this.#position++;
    return this.#inlineValue(line.text, line, indent - 1);
  }

  #sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    for (let line = this.#next(); line !== undefined && line.indent === indent; line = this.#next()) {
      if (!isSequenceEntry(line.text)) break;
      const rest = line.text.slice(1);
      const content = rest.trimStart();
      if (isBlank(content)) {
        this.#position++;
        const child = this.#next();
        items.push(child !== undefined && child.indent > indent ? this.#node(child.indent) : null);
        continue;
      }
      // "- key: value" (or "- - item") opens a nested block at the column of its content: reread the line there.
      const column = indent + 1 + (rest.length - content.length);
      this.#lines[this.#position] = { number: line.number, indent: column, text: content };
      items.push(this.#node(column));
    }
    return items;
  }

  #mapping(indent: number): { [key: string]: YamlValue } {
    const map: { [key: string]: YamlValue } = {};
    for (let line = this.#next(); line !== undefined && line.indent === indent; line = this.#next()) {
      const entry = mappingKey(line.text, line.number);
      if (entry === undefined) fail(line.number, "a line that is neither a key nor an item in a mapping");
      if (Object.hasOwn(map, entry.key)) fail(line.number, `duplicate keys ("${entry.key}")`);
      this.#position++;
      let value: YamlValue;
      if (entry.rest.trim() === "" || entry.rest.trimStart().startsWith("#")) {
        const child = this.#next();
        if (child !== undefined && child.indent > indent) value = this.#node(child.indent);
        else if (child !== undefined && child.indent === indent && isSequenceEntry(child.text)) {
          value = this.#sequence(indent);
        } else value = null;
      } else {
        value = this.#inlineValue(entry.rest.trimStart(), line, indent);
      }
      Object.defineProperty(map, entry.key, { value, enumerable: true, writable: true, configurable: true });
    }
    return map;
  }

  /** A value that starts on `line` (after a key or a dash), possibly continued on lines indented past `parent`. */
  #inlineValue(text: string, line: Line, parent: number): YamlValue {
    const value = text.trimStart();
    if (/^[|>]/.test(value)) return this.#blockScalar(value, line, parent);
    if (indicatorStart.test(value)) fail(line.number, "anchors, aliases, tags, complex keys and reserved indicators");
    if (value.startsWith("[") || value.startsWith("{") || value.startsWith('"') || value.startsWith("'")) {
      let source = value;
      while (!flowComplete(source)) {
        const more = this.#lines[this.#position];
        if (more === undefined || (more.indent <= parent && !isBlank(more.text))) {
          fail(line.number, "unterminated flow collections or quoted scalars");
        }
        this.#position++;
        source += `\n${more.text}`;
      }
      return new FlowReader(source, line.number).all();
    }
    // A plain scalar, folded over any more-indented lines that follow.
    const parts = [stripComment(value)];
    for (let more = this.#lines[this.#position]; more !== undefined; more = this.#lines[this.#position]) {
      if (isBlank(more.text)) {
        if (more.text.trim() !== "") break;
        this.#position++;
        parts.push("\n");
        continue;
      }
      if (more.indent <= parent) break;
      this.#position++;
      parts.push(stripComment(more.text));
    }
    while (parts[parts.length - 1] === "\n") parts.pop();
    const plain = parts.join(" ").replace(/ ?\n ?/g, "\n");
    // In block context "a: b" would have been a mapping: a plain scalar holding one is malformed YAML.
    if (/: |:$/.test(plain)) fail(line.number, "plain scalars holding ': '");
    return plainScalar(plain);
  }

  #blockScalar(header: string, line: Line, parent: number): string {
    const match = /^([|>])([1-9])?([+-])?([1-9])?\s*(#.*)?$/.exec(header);
    if (match === null) fail(line.number, "block scalar headers like this");
    const [, style, indicatorA, chomping, indicatorB] = match;
    const indicator = indicatorA ?? indicatorB;
    const body: string[] = [];
    let contentIndent = indicator === undefined ? undefined : parent + Number(indicator);
    while (this.#position < this.#lines.length) {
      const next = this.#lines[this.#position] as Line;
      if (next.text.trim() === "") {
        body.push("");
        this.#position++;
        continue;
      }
      contentIndent ??= next.indent;
      if (next.indent < contentIndent || contentIndent <= parent) break;
      body.push(" ".repeat(next.indent - contentIndent) + next.text);
      this.#position++;
    }
    while (body.length > 0 && body[body.length - 1] === "") body.pop();
    const joined =
      style === "|" || body.some((text) => text.startsWith(" "))
        ? body.join("\n")
        : body.map((text) => (text === "" ? "\n" : text)).join(" ");
    return chomping === "-" ? joined : `${joined}\n`;
  }
}

function isSequenceEntry(text: string): boolean {
  return text === "-" || text.startsWith("- ");
}

/** `key: rest` when the line is a mapping entry with a plain or quoted key. */
function mappingKey(text: string, line: number): { key: string; rest: string } | undefined {
  if (text.startsWith('"') || text.startsWith("'")) {
    const reader = new FlowReader(text, line);
    const key = reader.quoted();
    const after = text.slice(reader.offset);
    const match = /^\s*:(\s|$)/.exec(after);
    return match === null ? undefined : { key, rest: after.slice(match[0].length) };
  }
  if (text.startsWith("[") || text.startsWith("{") || text.startsWith("#")) return undefined;
  const match = /^([^\s#][^#]*?)\s*:(\s|$)/.exec(text);
  if (match === null) return undefined;
  const key = match[1] as string;
  if (indicatorStart.test(key) || key.startsWith("- ")) fail(line, "keys starting with an indicator");
  return { key, rest: text.slice(match[0].length) };
}

function plainScalar(text: string): string | null {
  return text === "" || text === "~" || text === "null" || text === "Null" || text === "NULL" ? null : text;
}

/** Whether brackets and quotes in a flow value are balanced (so it has been read to its end). */
function flowComplete(source: string): boolean {
  let depth = 0;
  let quote: string | undefined;
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if (quote !== undefined) {
      if (quote === "'" && char === "'" && source[i + 1] === "'") i++;
      else if (quote === '"' && char === "\\") i++;
      else if (char === quote) {
        quote = undefined;
        if (depth === 0) return true;
      }
      continue;
    }
    if (char === '"' || char === "'") quote = char;
    else if (char === "[" || char === "{") depth++;
    else if (char === "]" || char === "}") {
      depth--;
      if (depth === 0) return true;
    } else if (char === "#" && (i === 0 || /\s/.test(source[i - 1] as string))) {
      const end = source.indexOf("\n", i);
      if (end < 0) return false;
      i = end;
    }
  }
  return false;
}

const escapes: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};

/** Flow collections and quoted scalars, over text that may span lines. */
class FlowReader {
  offset = 0;
  readonly #source: string;
  readonly #line: number;

  constructor(source: string, line: number) {
    this.#source = source;
    this.#line = line;
  }

  /** The whole source as one value, with nothing but white space and a comment after it. */
  all(): YamlValue {
    const value = this.#value();
    const rest = stripComment(this.#source.slice(this.offset)).trim();
    if (rest !== "") fail(this.#line, "content after a flow value");
    return value;
  }

  #value(): YamlValue {
    this.#skip();
    const char = this.#source[this.offset];
    if (char === "[") return this.#sequence();
    if (char === "{") return this.#mapping();
    if (char === '"' || char === "'") return this.quoted();
    return this.#plain();
  }

  #skip(): void {
    for (;;) {
      const char = this.#source[this.offset];
      if (char === " " || char === "\t" || char === "\n" || char === "\r") this.offset++;
      else if (char === "#") {
        const end = this.#source.indexOf("\n", this.offset);
        this.offset = end < 0 ? this.#source.length : end;
      } else return;
    }
  }

  #sequence(): YamlValue[] {
    this.offset++;
    const items: YamlValue[] = [];
    for (;;) {
      this.#skip();
      if (this.#source[this.offset] === "]") {
        this.offset++;
        return items;
      }
      items.push(this.#value());
      this.#skip();
      const char = this.#source[this.offset];
      if (char === ",") this.offset++;
      else if (char !== "]") fail(this.#line, "malformed flow sequences");
    }
  }

  #mapping(): { [key: string]: YamlValue } {
    this.offset++;
    const map: { [key: string]: YamlValue } = {};
    for (;;) {
      this.#skip();
      if (this.#source[this.offset] === "}") {
        this.offset++;
        return map;
      }
      const key = this.#value();
      if (typeof key !== "string") fail(this.#line, "flow mapping keys that are not strings");
      this.#skip();
      if (this.#source[this.offset] !== ":") fail(this.#line, "flow mapping entries without a value");
      this.offset++;
      const value = this.#value();
      if (Object.hasOwn(map, key)) fail(this.#line, `duplicate keys ("${key}")`);
      Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
      this.#skip();
      const char = this.#source[this.offset];
      if (char === ",") this.offset++;
      else if (char !== "}") fail(this.#line, "malformed flow mappings");
    }
  }

  #plain(): string | null {
    const start = this.offset;
    const rest = this.#source.slice(start);
    if (indicatorStart.test(rest)) fail(this.#line, "anchors, aliases, tags and reserved indicators");
    const match = /^[^,[\]{}\n#]*?(?=\s*(?:[,\]}\n]|:(?:\s|$)|\s#|$))/.exec(rest);
    const text = (match?.[0] ?? "").trim();
    if (text === "") fail(this.#line, "empty flow entries");
    this.offset = start + (match?.[0].length ?? 0);
    return plainScalar(text);
  }

  /** A single- or double-quoted scalar at the current offset, folded as YAML folds multi-line quoted scalars. */
  quoted(): string {
    const quote = this.#source[this.offset] as string;
    let raw = "";
    let i = this.offset + 1;
    for (;;) {
      const char = this.#source[i];
      if (char === undefined) fail(this.#line, "unterminated quoted scalars");
      if (quote === "'" && char === "'") {
        if (this.#source[i + 1] === "'") {
          raw += "''";
          i += 2;
          continue;
        }
        break;
      }
      if (quote === '"' && char === "\\") {
        raw += this.#source.slice(i, i + 2);
        i += 2;
        continue;
      }
      if (quote === '"' && char === '"') break;
      raw += char;
      i++;
    }
    this.offset = i + 1;
    const folded = raw.includes("\n") ? fold(raw, this.#line) : raw;
    return quote === "'" ? folded.replaceAll("''", "'") : unescapeDoubleQuoted(folded, this.#line);
  }
}

/** Folds the line breaks of a multi-line quoted scalar: one break is a space, an empty line a newline. */
function fold(raw: string, line: number): string {
  const lines = raw.split("\n").map((text, index, all) => {
    let result = index === 0 ? text : text.trimStart();
    if (index < all.length - 1) result = result.trimEnd();
    return result;
  });
  if (lines.some((text, index) => index < lines.length - 1 && text.endsWith("\\"))) {
    fail(line, "escaped line breaks in quoted scalars");
  }
  let out = lines[0] as string;
  for (let index = 1; index < lines.length; index++) {
    const text = lines[index] as string;
    if (text === "" && index < lines.length - 1) out += "\n";
    else out += out.endsWith("\n") ? text : ` ${text}`;
  }
  return out;
}

function unescapeDoubleQuoted(text: string, line: number): string {
  return text.replace(/\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[\s\S])/g, (_, sequence: string) => {
    if (sequence.length > 1) return String.fromCodePoint(Number.parseInt(sequence.slice(1), 16));
    const replacement = escapes[sequence];
    if (replacement === undefined) fail(line, `the escape \\${sequence}`);
    return replacement;
  });
}
