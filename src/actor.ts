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

/** C0 and C1 controls, and format characters: zero-width spaces and joiners, bidi overrides, the BOM, tags. */
export const invisibleCharacter = /[\p{Cc}\p{Cf}]/u;

/**
 * Validates a caller's user or agent, so that nothing malformed reaches the PDP.
 *
 * @remarks
 * Ids and roles are normalized to Unicode NFC, so that two spellings of one name are one principal, and refused when
 * they hold control or invisible (format) characters or surrounding white space, which would let a name that looks
 * like another one pass for it.
 */
export function toActor(input: ActorInput, path: string): Actor {
  if (typeof input !== "object" || input === null) throw new InvalidInputError(path, "must be an object");
  // Each field is read once: a getter gets no second chance to answer differently.
  const { id, roles, attr: attributes } = input;
  const actorId = toName(id, `${path}.id`);
  if (!Array.isArray(roles) || roles.length === 0) {
    throw new InvalidInputError(`${path}.roles`, "must be a non-empty array of role names");
  }
  const actorRoles = Array.from(roles as readonly unknown[], (role, index) => toName(role, `${path}.roles[${index}]`));
  const attr = toAttributeRecord(attributes, `${path}.attr`);
  for (const name of reservedAttributes) {
    if (Object.hasOwn(attr, name)) {
      throw new InvalidInputError(`${path}.attr.${name}`, `"${name}" is reserved for hopguard's chain attributes`);
    }
  }
  return deepFreeze({ id: actorId, roles: actorRoles, attr });
}

/**
 * The key two ids are compared by when looking for a cycle: NFKC, case-folded. Stricter than Cerbos, which tells
 * `Planner` from `planner`: a chain may not come back to an agent under a look-alike name.
 */
export function identityKey(id: string): string {
  return id.normalize("NFKC").toLowerCase();
}

function toName(value: unknown, path: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new InvalidInputError(path, "must be a non-empty string");
  if (invisibleCharacter.test(value)) {
    throw new InvalidInputError(path, "must not contain control or invisible (format) characters");
  }
  if (value.trim() !== value) throw new InvalidInputError(path, "must not start or end with white space");
  return value.normalize("NFC");
}

/** Freezes a JSON-like value all the way down, so a Delegation cannot be changed after the PDP approved it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
