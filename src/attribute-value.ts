import type { Value } from "@cerbos/core";
import { InvalidInputError } from "./errors.ts";

/** Limits on what one snapshot may hold; past them the input is refused rather than sent. */
export interface SnapshotLimits {
  /** Characters of strings and keys, summed over the whole value. */
  readonly maxChars: number;
  /** Nesting of objects and arrays. */
  readonly maxDepth: number;
}

/** 1 MiB of text and 64 levels: far beyond any real tool call, well inside what Cerbos and protobuf accept. */
export const defaultSnapshotLimits: SnapshotLimits = Object.freeze({ maxChars: 1 << 20, maxDepth: 64 });

/**
 * Takes a JSON snapshot of anything a caller or a model may hand us: the one copy that is both checked by the PDP
 * and sent or executed, so that what was checked is exactly what runs.
 *
 * @remarks
 * It reads the input the way `JSON.stringify` does, and reads it exactly once: `toJSON` is honoured (a `URL`, a
 * `Date`, a decimal type become what the wire would carry), each own enumerable property is read once (a getter
 * cannot answer differently later), `undefined` properties are dropped and `undefined` array items become `null`.
 * Keys JSON keeps — `__proto__` included — stay own data properties, so the PDP sees exactly what the server will.
 * What JSON cannot carry faithfully (functions, symbols, bigints, non-finite numbers, cycles), and input past
 * {@link SnapshotLimits}, is an {@link InvalidInputError} naming the path: never a silent change, never a silent
 * allow. The result is fresh, plain data that nobody else holds.
 */
export function toAttributeValue(input: unknown, path: string, limits: SnapshotLimits = defaultSnapshotLimits): Value {
  const budget = { chars: limits.maxChars };
  return convert(input, path, "", new Set(), 0, limits, budget);
}

/** {@link toAttributeValue} for an object whose keys become Cerbos attributes. */
export function toAttributeRecord(
  input: unknown,
  path: string,
  limits: SnapshotLimits = defaultSnapshotLimits,
): Record<string, Value> {
  if (input === undefined || input === null) return {};
  const value = toAttributeValue(input, path, limits);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInputError(path, `must be a plain object, got ${describe(value)}`);
  }
  return value;
}

function convert(
  input: unknown,
  path: string,
  key: string,
  seen: Set<object>,
  depth: number,
  limits: SnapshotLimits,
  budget: { chars: number },
): Value {
  let value = input;
  if (value instanceof Date && Number.isNaN(value.getTime())) throw new InvalidInputError(path, "is an invalid Date");
  if ((typeof value === "object" && value !== null) || typeof value === "bigint") {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") value = toJSON.call(value, key);
  }
  switch (typeof value) {
    case "string":
      spend(budget, value.length, path, limits);
      return value;
    case "boolean":
      return value;
    case "number":
      if (!Number.isFinite(value)) throw new InvalidInputError(path, `${value} cannot be sent as JSON`);
      return value;
    case "object": {
      if (value === null) return null;
      // Boxed primitives are what JSON unboxes.
      if (value instanceof Number || value instanceof String || value instanceof Boolean) {
        return convert(value.valueOf(), path, key, seen, depth, limits, budget);
      }
      if (depth >= limits.maxDepth) {
        throw new InvalidInputError(path, `nests deeper than ${limits.maxDepth} levels`);
      }
      if (seen.has(value)) throw new InvalidInputError(path, "contains a reference cycle");
      seen.add(value);
      try {
        if (Array.isArray(value)) {
          const length = value.length;
          const result: Value[] = new Array(length);
          for (let index = 0; index < length; index++) {
            const item: unknown = value[index];
            result[index] =
              item === undefined
                ? null
                : convert(item, `${path}[${index}]`, String(index), seen, depth + 1, limits, budget);
          }
          return result;
        }
        const result: Record<string, Value> = {};
        for (const name of Object.keys(value)) {
          const item: unknown = (value as Record<string, unknown>)[name];
          if (item === undefined) continue;
          spend(budget, name.length, path, limits);
          // defineProperty, not assignment: a "__proto__" key must stay an own key, as JSON.parse makes it.
          Object.defineProperty(result, name, {
            value: convert(item, `${path}.${name}`, name, seen, depth + 1, limits, budget),
            enumerable: true,
            writable: true,
            configurable: true,
          });
        }
        return result;
      } finally {
        seen.delete(value);
      }
    }
    default:
      throw new InvalidInputError(path, `${describe(value)} cannot be sent as JSON`);
  }
}

function spend(budget: { chars: number }, chars: number, path: string, limits: SnapshotLimits): void {
  budget.chars -= chars;
  if (budget.chars < 0) throw new InvalidInputError(path, `makes the input larger than ${limits.maxChars} characters`);
}

function describe(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "an array";
  return `a ${typeof input}`;
}
