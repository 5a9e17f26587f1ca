import type { StarterPolicySet } from "./starter-policies.ts";
import type { ToolAccess } from "./tool-access.ts";

/** The header of the table `hopguard init` prints; its columns are separated by two spaces or more. */
export const accessTableHeader = ["what", "kind", "user", "agent acting for the user"] as const;

/** Who may call each tool (and read each resource, get each prompt) under a starter policy set. */
export function accessTable(policies: StarterPolicySet): string {
  const rows: string[][] = policies.tools.map((tool) => [
    tool.tool,
    tool.patternName ? "name is a pattern" : tool.openWorld ? `${tool.effect}, open-world` : tool.effect,
    withRole(tool, tool.user),
    withRole(tool, tool.agent === "approval" ? "with approval" : tool.agent),
  ]);
  for (const uri of policies.resources) rows.push([uri, "resource", "yes", "yes"]);
  for (const template of policies.templates) rows.push([template, "resource template", "yes", "yes"]);
  for (const prompt of policies.prompts) rows.push([prompt, "prompt", "yes", "yes"]);
  return table([[...accessTableHeader], ...rows]);
}

function withRole(tool: ToolAccess, who: string): string {
  if (who === "no" || tool.role === undefined) return who;
  return who === "yes" ? `with role ${tool.role}` : `${who}, with role ${tool.role}`;
}

/**
 * Left-aligned columns, two spaces apart; the header underlined. A control or invisible character in a cell (a
 * server's names are the server's choice) is shown as its `\\u` escape, so every row stays one line.
 */
export function table(cells: readonly (readonly string[])[]): string {
  const rows = cells.map((row) => row.map(printable));
  const widths = rows.reduce<number[]>(
    (max, row) => row.map((cell, index) => Math.max(max[index] ?? 0, cell.length)),
    [],
  );
  const line = (row: readonly string[]) =>
    row
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join("  ")
      .trimEnd();
  const [header = [], ...body] = rows;
  return [line(header), line(widths.map((width) => "─".repeat(width))), ...body.map(line)].join("\n");
}

/** A name as one printable line: control and invisible characters as their `\\u` escapes. */
export function printable(cell: string): string {
  return cell.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (character) => {
    return `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`;
  });
}
