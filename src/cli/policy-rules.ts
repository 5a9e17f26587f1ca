import { readdir, readFile } from "node:fs/promises";
import { basename, join, relative, sep } from "node:path";
import { parseAllDocuments } from "yaml";
import { CliError } from "./cli-error.ts";

/** One rule of a Cerbos policy, reduced to what it applies to: a resource kind and the actions it names. */
export interface PolicyRule {
  /** The policy file, relative to the policy folder. */
  readonly file: string;
  /** The rule's name, or where it stands in its policy when it has none. */
  readonly rule: string;
  /** The resource kind, or (principal and role policies) a pattern of kinds where `*` matches anything. */
  readonly kind: string;
  /** Action names or patterns (`*` matches any run of characters but `:`). */
  readonly actions: readonly string[];
}

const policyFile = /\.(?:ya?ml|json)$/i;
const testFile = /_test\.(?:ya?ml|json)$/i;

/**
 * Reads every rule of every resource, principal and role policy in a folder, as Cerbos's disk store does: YAML or
 * JSON files, several documents a file, skipping test suites (`*_test.yaml`), `testdata/` and hidden folders.
 */
export async function readPolicyRules(folder: string): Promise<PolicyRule[]> {
  let entries: string[];
  try {
    entries = (await readdir(folder, { recursive: true })).map(String);
  } catch (error) {
    throw new CliError(`cannot read the policy folder ${folder}: ${(error as Error).message}`, { cause: error });
  }
  const rules: PolicyRule[] = [];
  for (const entry of entries.sort()) {
    const parts = entry.split(sep);
    if (!policyFile.test(entry) || testFile.test(basename(entry))) continue;
    if (parts.some((part) => part === "testdata" || part.startsWith("."))) continue;
    const path = join(folder, entry);
    const file = relative(folder, path);
    const text = await readFile(path, "utf8");
    for (const document of parseAllDocuments(text, { uniqueKeys: false })) {
      if ("errors" in document && document.errors.length > 0) {
        throw new CliError(`${file} is not valid YAML: ${document.errors[0]?.message}`);
      }
      rules.push(...rulesOf(file, document.toJS()));
    }
  }
  return rules;
}

type Loose = Record<string, unknown> | undefined;

function rulesOf(file: string, policy: unknown): PolicyRule[] {
  if (typeof policy !== "object" || policy === null) return [];
  const { resourcePolicy, principalPolicy, rolePolicy } = policy as Record<string, Loose>;
  const list = (value: unknown): Loose[] => (Array.isArray(value) ? (value as Loose[]) : []);
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
  if (resourcePolicy !== undefined) {
    const kind = String(resourcePolicy.resource ?? "");
    return list(resourcePolicy.rules).map((rule, index) => ({
      file,
      rule: typeof rule?.name === "string" ? rule.name : `rule ${index + 1}`,
      kind,
      actions: strings(rule?.actions),
    }));
  }
  if (principalPolicy !== undefined) {
    return list(principalPolicy.rules).map((rule, index) => ({
      file,
      rule: `${String(principalPolicy.principal)} rule ${index + 1}`,
      kind: String(rule?.resource ?? ""),
      actions: list(rule?.actions).flatMap((action) => strings([action?.action])),
    }));
  }
  if (rolePolicy !== undefined) {
    return list(rolePolicy.rules).map((rule, index) => ({
      file,
      rule: `${String(rolePolicy.role)} rule ${index + 1}`,
      kind: String(rule?.resource ?? ""),
      actions: strings(rule?.allowActions),
    }));
  }
  return [];
}

/**
 * Whether a Cerbos action name or pattern matches `action`. A name with `* ? [ {` in it is a glob whose wildcards
 * stop at `:` (`view:*` matches `view:all`, not `view:all:x`), as Cerbos reads it.
 */
export function actionMatches(pattern: string, action: string): boolean {
  if (pattern === action || pattern === "*") return true;
  if (!/[*?[{]/.test(pattern)) return false;
  return globRegExp(pattern, "[^:]").test(action);
}

/** Whether a resource kind or kind pattern (principal and role policies; `*` matches anything) matches `kind`. */
export function kindMatches(pattern: string, kind: string): boolean {
  if (pattern === kind || pattern === "*") return true;
  if (!/[*?[{]/.test(pattern)) return false;
  return globRegExp(pattern, ".").test(kind);
}

/** A glob (`*`, `?`, `[...]`, `[!...]`, `{a,b}`, `\\` escapes) as a regular expression; `any` is one character. */
function globRegExp(pattern: string, any: string): RegExp {
  let source = "";
  let braces = 0;
  for (let index = 0; index < pattern.length; index++) {
    const character = pattern[index] as string;
    if (character === "\\" && index + 1 < pattern.length) {
      source += escapeRegExp(pattern[++index] as string);
    } else if (character === "*") {
      source += `${any}*`;
    } else if (character === "?") {
      source += any;
    } else if (character === "[") {
      const end = pattern.indexOf("]", index + 2);
      if (end === -1) {
        source += "\\[";
        continue;
      }
      const body = pattern.slice(index + 1, end);
      const negated = body.startsWith("!");
      source += `[${negated ? "^" : ""}${(negated ? body.slice(1) : body).replace(/[\\\]^]/g, "\\$&")}]`;
      index = end;
    } else if (character === "{") {
      braces++;
      source += "(?:";
    } else if (character === "}" && braces > 0) {
      braces--;
      source += ")";
    } else if (character === "," && braces > 0) {
      source += "|";
    } else {
      source += escapeRegExp(character);
    }
  }
  try {
    return new RegExp(`^${source}${")".repeat(braces)}$`);
  } catch {
    // A pattern Cerbos would not compile either: it matches only itself.
    return new RegExp(`^${escapeRegExp(pattern)}$`);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
