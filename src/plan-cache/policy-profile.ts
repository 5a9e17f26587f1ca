import { readdir, readFile } from "node:fs/promises";
import { extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { unknownAttribute } from "./plan-key.ts";
import { parsePolicyYaml } from "./policy-yaml.ts";

/**
 * What the policies allow a plan cache to do for one (resource kind, action) pair.
 *
 * @remarks
 * `cacheable: false` means every hop of that pair is asked live, and why. `cacheable: true` lists the paths under
 * `R.attr.arguments` (relative to `R.attr`) that the policies test with `has()`: Cerbos's planner folds `has()` on an
 * attribute it was not given to `true`, so a plan speaks for a call only when each of those paths is present in it.
 */
export type PairProfile =
  | { readonly cacheable: false; readonly reason: string }
  | { readonly cacheable: true; readonly requiredPaths: readonly (readonly string[])[] };

/** Facts read from a set of Cerbos policies: which pairs a plan may answer. */
export interface PolicyProfile {
  /** The profile of one (resource kind, action) pair. */
  pair(kind: string, action: string): PairProfile;
}

/**
 * Reads the policies of a folder (as the Cerbos disk store does: `.yaml`, `.yml` and `.json` files, `*_test.*` files
 * and `testdata/` folders skipped, hidden files skipped) into a {@link PolicyProfile}.
 *
 * @remarks
 * A file this reader cannot follow is never skipped silently: the profile then says "live" for every pair, naming
 * the file. It must be given exactly the policies the PDP serves; read it again (and clear the cache) when they
 * change.
 */
export async function readPolicyProfile(policyDir: string | URL): Promise<PolicyProfile> {
  const root = policyDir instanceof URL ? fileURLToPath(policyDir) : resolve(policyDir);
  const documents: unknown[] = [];
  for (const path of await policyFiles(root)) {
    const name = relative(root, path);
    try {
      const text = await readFile(path, "utf8");
      const parsed = extname(path) === ".json" ? [JSON.parse(text) as unknown] : parsePolicyYaml(text);
      documents.push(...parsed.map((document) => ({ file: name, document })));
    } catch (error) {
      const reason = `policy file ${name} could not be read (${error instanceof Error ? error.message : error})`;
      return allLive(reason);
    }
  }
  return policyProfile(documents);
}

/** A profile that answers "live" for every pair. */
export function allLive(reason: string): PolicyProfile {
  const profile: PairProfile = Object.freeze({ cacheable: false, reason });
  return Object.freeze({ pair: () => profile });
}

async function policyFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith(".")) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "testdata") files.push(...(await policyFiles(path)));
    } else if (/\.(ya?ml|json)$/.test(entry.name) && !/_test\.(ya?ml|json)$/.test(entry.name)) {
      files.push(path);
    }
  }
  return files;
}

type Record_ = Record<string, unknown>;
type Variables = ReadonlyMap<string, string>;

interface DerivedRole {
  readonly condition: unknown;
  readonly variables: Variables;
}

interface ResourceRules {
  readonly file: string;
  readonly rules: readonly Record_[];
  readonly variables: Variables;
  readonly schemas: boolean;
}

/** What one expression, with every variable it uses, does that a plan would hide. */
interface Findings {
  time: boolean;
  opaque: string | undefined;
  readonly paths: string[][];
}

const knownTopLevel = new Set([
  "apiVersion",
  "description",
  "metadata",
  "variables",
  "disabled",
  "$schema",
  "resourcePolicy",
  "principalPolicy",
  "rolePolicy",
  "derivedRoles",
  "exportVariables",
  "exportConstants",
]);

/**
 * Builds a {@link PolicyProfile} from parsed policy documents (`{ file, document }` or bare documents).
 *
 * @remarks
 * A pair is asked live when any rule of the kind that could match the action (a `*` in a rule's actions counts as
 * matching) has an `output` (plans carry none), or its condition, a derived role it names or a variable either uses
 * reads the clock (`now`, `timeSince`: the planner evaluates them once, at planning time), or uses `has()` on
 * anything but a principal attribute or a plain path under `R.attr.arguments` (the planner folds `has()` on other
 * resource attributes wrongly, both ways); when the kind's policies declare schemas; and for every
 * pair when a principal or role policy does any of that, or a document is not a policy this reader knows.
 */
export function policyProfile(documents: readonly unknown[]): PolicyProfile {
  const resources = new Map<string, ResourceRules[]>();
  const derivedRoles = new Map<string, DerivedRole[]>();
  const exported = new Map<string, Map<string, string>>();
  const pending: { file: string; body: Record_; legacy: unknown }[] = [];
  const global: string[] = [];

  for (const entry of documents) {
    const { file, document } = unwrap(entry);
    if (!isRecord(document)) {
      global.push(`${file}: not a policy document`);
      continue;
    }
    const unknownKey = Object.keys(document).find((key) => !knownTopLevel.has(key));
    if (unknownKey !== undefined) global.push(`${file}: unknown policy section "${unknownKey}"`);
    const exportVariables = document.exportVariables;
    if (isRecord(exportVariables)) {
      const definitions = isRecord(exportVariables.definitions) ? exportVariables.definitions : {};
      exported.set(String(exportVariables.name), stringEntries(definitions));
    }
    const sets = document.derivedRoles;
    if (isRecord(sets)) pending.push({ file, body: sets, legacy: document.variables });
    for (const key of ["resourcePolicy", "principalPolicy", "rolePolicy"] as const) {
      const body = document[key];
      if (body !== undefined && !isRecord(body)) global.push(`${file}: malformed ${key}`);
      if (isRecord(body)) pending.push({ file, body: { [key]: body }, legacy: document.variables });
    }
  }

  const environment = (body: Record_, legacy: unknown, file: string): Map<string, string> => {
    const variables = new Map<string, string>();
    for (const source of [legacy, body.variables]) {
      if (!isRecord(source)) continue;
      const nested = "local" in source || "import" in source;
      if (!nested) for (const [name, expr] of stringEntries(source)) variables.set(name, expr);
      if (isRecord(source.local)) for (const [name, expr] of stringEntries(source.local)) variables.set(name, expr);
      for (const name of Array.isArray(source.import) ? source.import : []) {
        const set = exported.get(String(name));
        if (set === undefined) global.push(`${file}: imports unknown variables "${String(name)}"`);
        else for (const [variable, expr] of set) variables.set(variable, expr);
      }
    }
    return variables;
  };

  for (const { file, body, legacy } of pending) {
    if (isRecord(body.resourcePolicy)) {
      const policy = body.resourcePolicy;
      const kind = String(policy.resource);
      const rules = Array.isArray(policy.rules) ? policy.rules.filter(isRecord) : [];
      if (!Array.isArray(policy.rules) || rules.length !== policy.rules.length) {
        global.push(`${file}: malformed rules`);
      }
      const list = resources.get(kind) ?? [];
      list.push({ file, rules, variables: environment(policy, legacy, file), schemas: policy.schemas != null });
      resources.set(kind, list);
    } else if (isRecord(body.principalPolicy) || isRecord(body.rolePolicy)) {
      const policy = (body.principalPolicy ?? body.rolePolicy) as Record_;
      const what = isRecord(body.principalPolicy) ? "principal policy" : "role policy";
      const variables = environment(policy, legacy, file);
      const findings = newFindings();
      const rules = Array.isArray(policy.rules) ? policy.rules : [];
      for (const rule of rules) {
        if (!isRecord(rule)) continue;
        const actions = Array.isArray(rule.actions) ? rule.actions.filter(isRecord) : [];
        for (const part of [rule, ...actions]) {
          if (part.output != null) findings.opaque ??= "has a rule with outputs";
          if (part.condition != null) analyzeCondition(part.condition, variables, findings);
        }
      }
      const problem = findings.opaque ?? (findings.time ? "reads the clock" : undefined);
      if (problem !== undefined || findings.paths.length > 0) {
        global.push(`${what} in ${file} ${problem ?? "tests resource attributes with has()"}`);
      }
    } else {
      const definitions = Array.isArray(body.definitions) ? body.definitions : [];
      const variables = environment(body, legacy, file);
      for (const definition of definitions) {
        if (!isRecord(definition)) {
          global.push(`${file}: malformed derived role`);
          continue;
        }
        const name = String(definition.name);
        const list = derivedRoles.get(name) ?? [];
        list.push({ condition: definition.condition, variables });
        derivedRoles.set(name, list);
      }
    }
  }

  if (global.length > 0) return allLive(global.join("; "));

  const memo = new Map<string, PairProfile>();
  return Object.freeze({
    pair(kind: string, action: string): PairProfile {
      const key = `${kind}\u0000${action}`;
      let profile = memo.get(key);
      if (profile === undefined) {
        profile = Object.freeze(pairProfile(resources.get(kind) ?? [], derivedRoles, action));
        memo.set(key, profile);
      }
      return profile;
    },
  });
}

function pairProfile(
  policies: readonly ResourceRules[],
  derivedRoles: ReadonlyMap<string, readonly DerivedRole[]>,
  action: string,
): PairProfile {
  const findings = newFindings();
  for (const policy of policies) {
    const matching = policy.rules.filter((rule) => actionMatches(rule.actions, action));
    if (matching.length > 0 && policy.schemas) {
      return { cacheable: false, reason: `${policy.file} declares schemas, which plans do not apply to arguments` };
    }
    for (const rule of matching) {
      const name = typeof rule.name === "string" ? `rule "${rule.name}"` : "a rule";
      if (rule.output != null) {
        return { cacheable: false, reason: `${name} in ${policy.file} has outputs, which plans do not carry` };
      }
      if (rule.condition != null) analyzeCondition(rule.condition, policy.variables, findings);
      for (const role of Array.isArray(rule.derivedRoles) ? rule.derivedRoles : []) {
        const definitions = derivedRoles.get(String(role));
        if (definitions === undefined) {
          findings.opaque ??= `derived role "${String(role)}" is not defined`;
          continue;
        }
        for (const definition of definitions) {
          if (definition.condition != null) analyzeCondition(definition.condition, definition.variables, findings);
        }
      }
      if (findings.opaque !== undefined)
        return { cacheable: false, reason: `${name} in ${policy.file} ${findings.opaque}` };
      if (findings.time) {
        return {
          cacheable: false,
          reason: `${name} in ${policy.file} reads the clock, which a plan fixes at planning`,
        };
      }
    }
  }
  const unique = new Map(findings.paths.map((path) => [path.join("."), path]));
  return { cacheable: true, requiredPaths: [...unique.values()] };
}

function actionMatches(actions: unknown, action: string): boolean {
  if (!Array.isArray(actions)) return true;
  return actions.some((pattern) => typeof pattern !== "string" || pattern === action || pattern.includes("*"));
}

function newFindings(): Findings {
  return { time: false, opaque: undefined, paths: [] };
}

/** Walks `{ match: { expr | all | any | none } }` and analyzes every expression in it. */
function analyzeCondition(condition: unknown, variables: Variables, findings: Findings): void {
  if (!isRecord(condition) || !isRecord(condition.match) || Object.keys(condition).length !== 1) {
    findings.opaque ??= "has a condition this reader does not understand";
    return;
  }
  const visit = (match: unknown): void => {
    if (!isRecord(match)) {
      findings.opaque ??= "has a condition this reader does not understand";
      return;
    }
    if (typeof match.expr === "string") {
      analyzeExpression(match.expr, variables, findings, new Set());
      return;
    }
    const group = match.all ?? match.any ?? match.none;
    if (Object.keys(match).length !== 1 || !isRecord(group) || !Array.isArray(group.of)) {
      findings.opaque ??= "has a condition this reader does not understand";
      return;
    }
    for (const item of group.of) visit(item);
  };
  visit(condition.match);
}

const clock = /\b(now|timeSince)\b/;
const variableReference = /\b(?:V|variables)\.([A-Za-z_][A-Za-z0-9_]*)/g;
const variableIndex = /\b(?:V|variables)\s*\[/;
const hasCall = /(\.?)\bhas\s*\(/g;

// A variable whose definition is not an expression string stands for this; it is never analyzed as fine.
const unreadable = "\u0000unreadable";

function analyzeExpression(expr: string, variables: Variables, findings: Findings, seen: Set<string>): void {
  if (expr === unreadable) findings.opaque ??= "uses a variable that is not an expression";
  if (clock.test(expr)) findings.time = true;
  if (variableIndex.test(expr)) findings.opaque ??= "reads variables by index";
  for (const [, name] of expr.matchAll(variableReference)) {
    const definition = variables.get(name as string);
    if (definition === undefined) {
      findings.opaque ??= `uses an undefined variable "${name}"`;
    } else if (!seen.has(name as string)) {
      seen.add(name as string);
      analyzeExpression(definition, variables, findings, seen);
    }
  }
  for (const match of expr.matchAll(hasCall)) {
    if (match[1] === ".") {
      findings.opaque ??= "calls a has() method";
      continue;
    }
    const argument = balancedArgument(expr, (match.index ?? 0) + match[0].length);
    const path = argument === undefined ? undefined : attributePath(argument, variables, new Set());
    if (path === undefined) findings.opaque ??= `uses has(${argument ?? "…"}) on something a plan cannot vouch for`;
    else if (path !== "known" && path[0] !== unknownAttribute) {
      // Cerbos 0.51's planner folds has() on a top-level resource attribute it was given to false, and on one it was
      // not given to true: for anything but the arguments (never given), neither can be trusted.
      findings.opaque ??= `uses has(${argument}) on a resource attribute the planner misjudges`;
    } else if (path !== "known") findings.paths.push(path);
  }
}

/** The text up to the parenthesis that closes the one before `start`, skipping string literals. */
function balancedArgument(expr: string, start: number): string | undefined {
  let depth = 1;
  for (let i = start; i < expr.length; i++) {
    const char = expr[i];
    if (char === '"' || char === "'") {
      for (i++; i < expr.length && expr[i] !== char; i++) if (expr[i] === "\\") i++;
    } else if (char === "(") depth++;
    else if (char === ")" && --depth === 0) return expr.slice(start, i).trim();
  }
  return undefined;
}

const segment = "[A-Za-z_][A-Za-z0-9_]*";
const resourcePath = new RegExp(`^(?:R|request\\.resource)\\.attr((?:\\.${segment})+)$`);
const principalPath = new RegExp(`^(?:P|request\\.principal|C|constants)(?:\\.${segment})+$`);
const variablePath = new RegExp(`^(?:V|variables)\\.(${segment})((?:\\.${segment})*)$`);

/**
 * What `has(argument)` tests: a path under `R.attr` (the plan folds it), `"known"` for the principal and constants
 * (the planner sees them whole), `undefined` for anything else.
 */
function attributePath(argument: string, variables: Variables, seen: Set<string>): string[] | "known" | undefined {
  const text = stripParentheses(argument);
  const resource = resourcePath.exec(text);
  if (resource !== null) return (resource[1] as string).slice(1).split(".");
  if (principalPath.test(text)) return "known";
  const variable = variablePath.exec(text);
  if (variable === null) return undefined;
  const [, name, rest] = variable as unknown as [string, string, string];
  const definition = variables.get(name);
  if (definition === undefined || seen.has(name)) return undefined;
  seen.add(name);
  return attributePath(`${stripParentheses(definition)}${rest}`, variables, seen);
}

function stripParentheses(text: string): string {
  const trimmed = text.trim();
  return /^\([^()]*\)$/.test(trimmed) ? trimmed.slice(1, -1).trim() : trimmed;
}

function unwrap(entry: unknown): { file: string; document: unknown } {
  if (isRecord(entry) && typeof entry.file === "string" && "document" in entry) {
    return { file: entry.file, document: entry.document };
  }
  return { file: "(policy)", document: entry };
}

function isRecord(value: unknown): value is Record_ {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function stringEntries(record: Record_): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [name, expr] of Object.entries(record)) entries.set(name, typeof expr === "string" ? expr : unreadable);
  return entries;
}
