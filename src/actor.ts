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
  /**
   * The Cerbos policy version to judge this principal with (`P.policyVersion`: principal policies of that version).
   *
   * @defaultValue the PDP's default version
   */
  policyVersion?: string | undefined;
  /**
   * The Cerbos policy scope of this principal, e.g. `"acme.engineering"` (Cerbos's `principal.scope`: scoped
   * principal policies). Not to be confused with a delegation's `scope`, which limits what a hop may call.
   *
   * @defaultValue no scope
   */
  policyScope?: string | undefined;
}

/** A validated, frozen user or agent. */
export interface Actor {
  readonly id: string;
  readonly roles: readonly string[];
  readonly attr: Readonly<Record<string, Value>>;
  /** Only when given: Cerbos rejects an attribute whose value is `undefined`. */
  readonly policyVersion?: string;
  readonly policyScope?: string;
}

// What Cerbos's CheckResourcesRequest accepts for a principal's policy version and scope.
const policyVersionPattern = /^\w+$/;
const policyScopePattern = /^[0-9a-zA-Z][\w-]*(\.\w[\w-]*)*$/;

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
  const { id, roles, attr: attributes, policyVersion, policyScope } = input;
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
  if (policyVersion !== undefined && (typeof policyVersion !== "string" || !policyVersionPattern.test(policyVersion))) {
    throw new InvalidInputError(`${path}.policyVersion`, "must be a Cerbos policy version: letters, digits and _");
  }
  if (policyScope !== undefined && (typeof policyScope !== "string" || !policyScopePattern.test(policyScope))) {
    throw new InvalidInputError(`${path}.policyScope`, 'must be a Cerbos scope, e.g. "acme" or "acme.engineering"');
  }
  return deepFreeze({
    id: actorId,
    roles: actorRoles,
    attr,
    ...(policyVersion === undefined ? {} : { policyVersion }),
    ...(policyScope === undefined ? {} : { policyScope }),
  });
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
