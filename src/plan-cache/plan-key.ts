import type { Principal, Resource } from "@cerbos/core";

/**
 * Canonical JSON: object keys sorted, `undefined` properties dropped as JSON drops them. Two values the PDP cannot
 * tell apart get one text, and two it can tell apart never share one. `undefined` for anything JSON cannot carry
 * (such a request is never cached).
 */
export function canonicalJson(value: unknown): string | undefined {
  try {
    return write(value, 0);
  } catch (error) {
    if (error instanceof Uncacheable) return undefined;
    throw error;
  }
}

class Uncacheable extends Error {}

function write(value: unknown, depth: number): string {
  if (depth > 100) throw new Uncacheable("too deep");
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new Uncacheable("not finite");
      return JSON.stringify(value);
    case "object": {
      if (value === null) return "null";
      const memo = frozenTexts.get(value);
      if (memo !== undefined) return memo;
      const text = Array.isArray(value)
        ? `[${value.map((item) => (item === undefined ? "null" : write(item, depth + 1))).join(",")}]`
        : writeObject(value as Record<string, unknown>, depth);
      // A frozen value cannot change: its text is worth keeping (hop principals are frozen once, then reused). Only
      // the outermost value is kept: checking every nested one for frozenness would walk each subtree again.
      if (depth === 0 && isDeeplyFrozen(value, 0)) frozenTexts.set(value, text);
      return text;
    }
    default:
      throw new Uncacheable(typeof value);
  }
}

function writeObject(value: Record<string, unknown>, depth: number): string {
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    throw new Uncacheable("not a plain object");
  }
  let text = "";
  for (const key of Object.keys(value).sort()) {
    const item = value[key];
    if (item !== undefined) text += `${text === "" ? "" : ","}${JSON.stringify(key)}:${write(item, depth + 1)}`;
  }
  return `{${text}}`;
}

const frozenTexts = new WeakMap<object, string>();

function isDeeplyFrozen(value: unknown, depth: number): boolean {
  if (typeof value !== "object" || value === null) return true;
  if (depth > 100 || !Object.isFrozen(value)) return false;
  if (frozenTexts.has(value)) return true;
  return Object.values(value).every((item) => isDeeplyFrozen(item, depth + 1));
}

/** The attribute a plan leaves unknown: the call's arguments. */
export const unknownAttribute = "arguments";

/** What a plan is asked about: the resource without its id and without {@link unknownAttribute}. */
export function plannedResource(resource: Resource): Omit<Resource, "id"> {
  const { id: _id, attr, ...rest } = resource;
  if (attr === undefined) return rest;
  const { [unknownAttribute]: _arguments, ...known } = attr;
  return { ...rest, attr: known };
}

/**
 * The cache key of one hop's plan: the whole principal (id, roles, every attribute, policy version, scope), the
 * resource's kind, policy version, scope and every attribute but the arguments, the action and any auxData.
 * `undefined` when some part cannot be written as JSON.
 */
export function planKey(
  principal: Principal,
  resource: Resource,
  action: string,
  auxData: unknown,
): string | undefined {
  const principalText = canonicalJson(principal);
  const checkText = checkKey(resource, action, auxData);
  if (principalText === undefined || checkText === undefined) return undefined;
  return `${principalText}\n${checkText}`;
}

/**
 * The part of {@link planKey} that is the same for every hop of one check: the planned resource, the action and any
 * auxData. `undefined` when some part cannot be written as JSON.
 */
export function checkKey(resource: Resource, action: string, auxData: unknown): string | undefined {
  // A deeply frozen resource cannot change: its key is kept with it (a listing hands over the same checks each time).
  const kept = auxData === undefined ? frozenChecks.get(resource) : undefined;
  if (kept?.action === action) return kept.text;
  const text = writeCheckKey(resource, action, auxData);
  if (text !== undefined && auxData === undefined && isDeeplyFrozen(resource, 0)) {
    frozenChecks.set(resource, { action, text });
  }
  return text;
}

const frozenChecks = new WeakMap<object, { readonly action: string; readonly text: string }>();

function writeCheckKey(resource: Resource, action: string, auxData: unknown): string | undefined {
  const resourceText = canonicalJson(plannedResource(resource));
  const auxText = auxData === undefined ? "" : canonicalJson(auxData);
  if (resourceText === undefined || auxText === undefined) return undefined;
  return `${resourceText}\n${JSON.stringify(action)}\n${auxText}`;
}
