import type { Principal, Resource } from "@cerbos/core";
import { canonicalJson, isDeeplyFrozen } from "../canonical-json.ts";

export { canonicalJson };

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
