import type { Value } from "@cerbos/core";
import { invisibleCharacter } from "./actor.ts";
import { InvalidInputError } from "./errors.ts";

/**
 * What a delegation may do, as requested by the caller. Every field narrows; leaving one out inherits the parent's.
 */
export interface Scope {
  /**
   * Tools this agent may call, as `"server/tool"` patterns where `*` matches any run of characters within its side
   * of the first `/` (e.g. `"filesystem/read_*"`, `"*\/search"`).
   *
   * @defaultValue the parent's tools (every tool at the root)
   */
  tools?: readonly string[] | undefined;
  /**
   * When the delegation stops working: a `Date`, an ISO-8601 string, or epoch milliseconds.
   *
   * @defaultValue the parent's expiry (none at the root)
   */
  expiresAt?: Date | string | number | undefined;
  /**
   * The deepest chain that may grow below this delegation, counting the user as depth 0.
   *
   * @defaultValue the parent's limit (the guard's `maxDepth` at the root)
   */
  maxDepth?: number | undefined;
}

/** The scope a delegation actually holds: its request intersected with every ancestor's. */
export interface EffectiveScope {
  /** Tool patterns, or `undefined` for every tool. */
  readonly tools: readonly string[] | undefined;
  /** Expiry in epoch milliseconds, or `undefined` for none. */
  readonly expiresAt: number | undefined;
  /** The deepest depth a chain below may reach. */
  readonly maxDepth: number;
}

/** Why a requested scope is not within its parent's. */
export interface ScopeWidening {
  readonly field: "tools" | "expiresAt" | "maxDepth";
  readonly detail: string;
}

/** Validates and normalizes a caller's scope for the root of a chain. */
export function rootScope(requested: Scope | undefined, maxDepth: number, path: string): EffectiveScope {
  return {
    tools: requested?.tools === undefined ? undefined : normalizeTools(requested.tools, `${path}.tools`),
    expiresAt: requested?.expiresAt === undefined ? undefined : toEpoch(requested.expiresAt, `${path}.expiresAt`),
    maxDepth:
      requested?.maxDepth === undefined
        ? maxDepth
        : Math.min(maxDepth, toDepth(requested.maxDepth, `${path}.maxDepth`)),
  };
}

/**
 * Intersects a requested scope with its parent's, or says how the request would widen it.
 *
 * @remarks
 * A request wider than the parent is refused rather than silently clipped: a caller that asked for more than it can
 * have has a bug or an attacker behind it, and either way should hear about it.
 */
export function narrowScope(
  parent: EffectiveScope,
  requested: Scope | undefined,
  path: string,
): EffectiveScope | ScopeWidening {
  let tools = parent.tools;
  if (requested?.tools !== undefined) {
    const asked = normalizeTools(requested.tools, `${path}.tools`);
    if (parent.tools !== undefined) {
      const parentTools = parent.tools;
      const outside = asked.filter((pattern) => !parentTools.some((allowed) => patternCovers(allowed, pattern)));
      if (outside.length > 0) {
        return { field: "tools", detail: `${outside.join(", ")} not within [${parentTools.join(", ")}]` };
      }
    }
    tools = asked;
  }

  let expiresAt = parent.expiresAt;
  if (requested?.expiresAt !== undefined) {
    const asked = toEpoch(requested.expiresAt, `${path}.expiresAt`);
    if (parent.expiresAt !== undefined && asked > parent.expiresAt) {
      return {
        field: "expiresAt",
        detail: `${new Date(asked).toISOString()} is after ${new Date(parent.expiresAt).toISOString()}`,
      };
    }
    expiresAt = asked;
  }

  let maxDepth = parent.maxDepth;
  if (requested?.maxDepth !== undefined) {
    const asked = toDepth(requested.maxDepth, `${path}.maxDepth`);
    if (asked > parent.maxDepth) return { field: "maxDepth", detail: `${asked} is above ${parent.maxDepth}` };
    maxDepth = asked;
  }
  return { tools, expiresAt, maxDepth };
}

/** True when the scope's tool patterns admit `server/tool` (an unrestricted scope admits everything). */
export function scopeAdmitsTool(scope: EffectiveScope, server: string, tool: string): boolean {
  if (scope.tools === undefined) return true;
  return scope.tools.some((pattern) => patternMatches(pattern, server, tool));
}

/** The scope as a Cerbos attribute: JSON only, no undefined, expiry as ISO-8601. */
export function scopeAttribute(scope: EffectiveScope): Record<string, Value> {
  const attribute: Record<string, Value> = { maxDepth: scope.maxDepth };
  if (scope.tools !== undefined) attribute.tools = [...scope.tools];
  if (scope.expiresAt !== undefined) attribute.expiresAt = new Date(scope.expiresAt).toISOString();
  return attribute;
}

function normalizeTools(tools: readonly string[], path: string): readonly string[] {
  if (!Array.isArray(tools)) throw new InvalidInputError(path, "must be an array of 'server/tool' patterns");
  return Object.freeze(
    tools.map((pattern, index) => {
      if (typeof pattern !== "string" || splitPattern(pattern) === undefined || invisibleCharacter.test(pattern)) {
        throw new InvalidInputError(
          `${path}[${index}]`,
          `must look like "server/tool", got ${JSON.stringify(pattern)}`,
        );
      }
      return pattern;
    }),
  );
}

const maxEpochMs = 8.64e15;

function toEpoch(value: Date | string | number, path: string): number {
  const epoch = value instanceof Date ? value.getTime() : typeof value === "string" ? Date.parse(value) : value;
  if (typeof epoch !== "number" || !Number.isFinite(epoch)) {
    throw new InvalidInputError(path, `must be a Date, an ISO-8601 string or epoch milliseconds`);
  }
  // Beyond ±8.64e15 ms a Date cannot exist, and toISOString would throw a RangeError later, mid-decision.
  if (Math.abs(epoch) > maxEpochMs) {
    throw new InvalidInputError(path, `must be within ±${maxEpochMs} epoch milliseconds (what a Date can hold)`);
  }
  return epoch;
}

function toDepth(value: number, path: string): number {
  if (!Number.isInteger(value) || value < 0) throw new InvalidInputError(path, "must be a whole number ≥ 0");
  return value;
}

function splitPattern(pattern: string): [server: string, tool: string] | undefined {
  const slash = pattern.indexOf("/");
  if (slash <= 0 || slash === pattern.length - 1) return undefined;
  return [pattern.slice(0, slash), pattern.slice(slash + 1)];
}

function patternMatches(pattern: string, server: string, tool: string): boolean {
  const sides = splitPattern(pattern);
  return sides !== undefined && globMatches(sides[0], server) && globMatches(sides[1], tool);
}

/** True when every call `inner` admits is also admitted by `outer`. */
function patternCovers(outer: string, inner: string): boolean {
  const outerSides = splitPattern(outer);
  const innerSides = splitPattern(inner);
  if (outerSides === undefined || innerSides === undefined) return false;
  return globCovers(outerSides[0], innerSides[0]) && globCovers(outerSides[1], innerSides[1]);
}

function globMatches(glob: string, text: string): boolean {
  return globCovers(glob, text.replaceAll("*", "\u0000"));
}

/**
 * Whether glob `outer` admits every string glob `inner` admits, deciding conservatively: a `*` in `inner` can only be
 * absorbed by a `*` in `outer`. That never accepts a widening; it may refuse a few exotic but equal pairs.
 */
function globCovers(outer: string, inner: string): boolean {
  // reachable[j]: outer[0..i) can produce inner[0..j)
  let reachable = new Array<boolean>(inner.length + 1).fill(false);
  reachable[0] = true;
  for (const symbol of outer) {
    const next = new Array<boolean>(inner.length + 1).fill(false);
    if (symbol === "*") {
      let open = false;
      for (let j = 0; j <= inner.length; j++) {
        open ||= reachable[j] === true;
        next[j] = open;
      }
    } else {
      for (let j = 1; j <= inner.length; j++) next[j] = reachable[j - 1] === true && inner[j - 1] === symbol;
    }
    reachable = next;
  }
  return reachable[inner.length] === true;
}
