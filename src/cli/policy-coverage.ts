import { actionMatches, kindMatches, type PolicyRule } from "./policy-rules.ts";
import type { ServerListing } from "./server-listing.ts";

/** Something a live server offers that no policy rule applies to: every principal gets "no matching policy". */
export interface Uncovered {
  readonly what: "tool" | "resource" | "resource template" | "prompt";
  readonly name: string;
}

/** An action a rule names that the server has no use for: a typo, or a tool the server no longer has. */
export interface UnknownAction {
  readonly file: string;
  readonly rule: string;
  readonly kind: string;
  readonly action: string;
  /** The closest name that does exist, when one is close. */
  readonly suggestion: string | undefined;
}

/** What `hopguard lint` found. */
export interface Coverage {
  readonly uncovered: readonly Uncovered[];
  readonly unknown: readonly UnknownAction[];
  /** No rule at all applies to the server's tools: often a wrong `--server` name. */
  readonly noToolPolicy: boolean;
}

/**
 * Compares a live server's listings with the rules of a policy folder. Tools are checked as kind `mcp::<server>`
 * with the tool's name as action, resources as `mcp::<server>::resource` / `read`, prompts as
 * `mcp::<server>::prompt` / `get` (hopguard's contract). Unknown actions are reported only for rules that name one of
 * those kinds exactly: a rule for `*` kinds is about more than this server.
 */
export function policyCoverage(server: string, listing: ServerListing, rules: readonly PolicyRule[]): Coverage {
  const kinds = {
    tool: `mcp::${server}`,
    resource: `mcp::${server}::resource`,
    prompt: `mcp::${server}::prompt`,
  };
  const covers = (kind: string, action: string): boolean =>
    rules.some(
      (rule) => kindMatches(rule.kind, kind) && rule.actions.some((pattern) => actionMatches(pattern, action)),
    );

  const uncovered: Uncovered[] = [
    ...listing.tools
      .filter((tool) => !covers(kinds.tool, tool.name))
      .map((tool) => ({ what: "tool" as const, name: tool.name })),
    ...(covers(kinds.resource, "read")
      ? []
      : [
          ...listing.resources.map((resource) => ({ what: "resource" as const, name: resource.uri })),
          ...listing.resourceTemplates.map((template) => ({
            what: "resource template" as const,
            name: template.uriTemplate,
          })),
        ]),
    ...(covers(kinds.prompt, "get")
      ? []
      : listing.prompts.map((prompt) => ({ what: "prompt" as const, name: prompt.name }))),
  ];

  const toolNames = listing.tools.map((tool) => tool.name);
  const known: Record<string, readonly string[]> = {
    [kinds.tool]: toolNames,
    [kinds.resource]: ["read"],
    [kinds.prompt]: ["get"],
  };
  const unknown: UnknownAction[] = [];
  for (const rule of rules) {
    const names = known[rule.kind];
    if (names === undefined) continue;
    for (const action of rule.actions) {
      if (names.some((name) => actionMatches(action, name))) continue;
      unknown.push({ file: rule.file, rule: rule.rule, kind: rule.kind, action, suggestion: closest(action, names) });
    }
  }
  const noToolPolicy = listing.tools.length > 0 && !rules.some((rule) => kindMatches(rule.kind, kinds.tool));
  return { uncovered, unknown, noToolPolicy };
}

/** The name within a small edit distance of `name` (a third of its length, at least 2), if any. */
function closest(name: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of names) {
    const distance = editDistance(name, candidate);
    if (distance <= Math.max(2, Math.floor(name.length / 3)) && (best === undefined || distance < best.distance)) {
      best = { name: candidate, distance };
    }
  }
  return best?.name;
}

/** Damerau–Levenshtein distance (optimal string alignment): a swapped pair of letters is one edit. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => rows[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, at(i - 2, j - 2) + 1);
      }
      (rows[i] as number[])[j] = distance;
    }
  }
  return at(a.length, b.length);
}
