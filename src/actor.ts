import type { Value } from "@cerbos/core";
import { toAttributeRecord } from "./attribute-value.ts";
import { InvalidInputError } from "./errors.ts";

/** A user or an agent, as the caller describes it. */
export interface ActorInput {
  /** A stable, non-empty id: the Cerbos principal id. */
  id: string;
  /** At least one Cerbos role. */
  roles: readonly string[];
  /** Attributes for policies; must not use the names hopguard reserves ({@link reservedAttributes}). */
  attr?: Record<string, unknown> | undefined;
}

/** A validated, frozen user or agent. */
export interface Actor {
  readonly id: string;
  readonly roles: readonly string[];
  readonly attr: Readonly<Record<string, Value>>;
}

/** Principal attribute names hopguard sets on every hop; a caller's attribute may not collide with them. */
export const reservedAttributes: readonly string[] = Object.freeze(["onBehalfOf", "chain", "depth", "kind", "scope"]);

/** Validates a caller's user or agent, so that nothing malformed reaches the PDP. */
export function toActor(input: ActorInput, path: string): Actor {
  if (typeof input !== "object" || input === null) throw new InvalidInputError(path, "must be an object");
  if (typeof input.id !== "string" || input.id.trim() === "") {
    throw new InvalidInputError(`${path}.id`, "must be a non-empty string");
  }
  if (!Array.isArray(input.roles) || input.roles.length === 0) {
    throw new InvalidInputError(`${path}.roles`, "must be a non-empty array of role names");
  }
  input.roles.forEach((role, index) => {
    if (typeof role !== "string" || role.trim() === "") {
      throw new InvalidInputError(`${path}.roles[${index}]`, "must be a non-empty string");
    }
  });
  const attr = toAttributeRecord(input.attr, `${path}.attr`);
  for (const name of reservedAttributes) {
    if (Object.hasOwn(attr, name)) {
      throw new InvalidInputError(`${path}.attr.${name}`, `"${name}" is reserved for hopguard's chain attributes`);
    }
  }
  return deepFreeze({ id: input.id, roles: [...input.roles], attr });
}

/** Freezes a JSON-like value all the way down, so a Delegation cannot be changed after the PDP approved it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
