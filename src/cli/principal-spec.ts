import type { ActorInput, AgentInput, Scope } from "../index.ts";
import { CliError } from "./cli-error.ts";

/** `id:roles[:json]` split into its parts; the JSON part may itself hold colons. */
function split(spec: string, option: string): { id: string; roles: string[]; json: unknown } {
  const first = spec.indexOf(":");
  if (first <= 0) throw new CliError(`${option} "${spec}": expected id:roles[:json], e.g. alice:user`);
  const rest = spec.slice(first + 1);
  const second = rest.indexOf(":");
  const roles = (second === -1 ? rest : rest.slice(0, second))
    .split(",")
    .map((role) => role.trim())
    .filter((role) => role !== "");
  if (roles.length === 0) throw new CliError(`${option} "${spec}": give at least one role, e.g. alice:user`);
  return {
    id: spec.slice(0, first),
    roles,
    json: second === -1 ? undefined : parseObject(rest.slice(second + 1), option),
  };
}

/** Parses text that must be one JSON object. */
export function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${what}: not JSON (${(error as Error).message}): ${text}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CliError(`${what}: expected a JSON object, got ${text}`);
  }
  return value as Record<string, unknown>;
}

/** `--user id:roles[:json attributes]`, e.g. `alice:user,admin:{"department":"engineering"}`. */
export function parseUser(spec: string): ActorInput {
  const { id, roles, json } = split(spec, "--user");
  return json === undefined ? { id, roles } : { id, roles, attr: json as Record<string, unknown> };
}

/** `--agent id:roles[:json scope]`, e.g. `helper:agent:{"tools":["filesystem/read_*"]}`. */
export function parseAgent(spec: string): AgentInput {
  const { id, roles, json } = split(spec, "--agent");
  return json === undefined ? { id, roles } : { id, roles, scope: json as Scope };
}
