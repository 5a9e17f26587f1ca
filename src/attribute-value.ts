import type { Value } from "@cerbos/core";
import { InvalidInputError } from "./errors.ts";

/**
 * Converts anything a caller or a model may hand us into a value the PDP can decode, following JSON's rules.
 *
 * @remarks
 * `@cerbos/grpc` rejects `undefined` anywhere in an attribute ("cannot decode message google.protobuf.Value"), so
 * object properties that are `undefined` are dropped exactly as `JSON.stringify` drops them. What JSON cannot carry
 * at all (functions, symbols, bigints, non-finite numbers, cycles) is an {@link InvalidInputError} naming the path,
 * so a bad argument can never become a silent allow or a confusing PDP error.
 */
export function toAttributeValue(input: unknown, path: string): Value {
  return convert(input, path, new Set());
}

/** {@link toAttributeValue} for an object whose keys become Cerbos attributes. */
export function toAttributeRecord(input: unknown, path: string): Record<string, Value> {
  if (input === undefined || input === null) return {};
  const value = toAttributeValue(input, path);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInputError(path, `must be a plain object, got ${describe(input)}`);
  }
  return value;
}

function convert(input: unknown, path: string, seen: Set<object>): Value {
  switch (typeof input) {
    case "string":
    case "boolean":
      return input;
    case "number":
      if (!Number.isFinite(input)) throw new InvalidInputError(path, `${input} cannot be sent to the PDP`);
      return input;
    case "object": {
      if (input === null) return null;
      if (input instanceof Date) {
        if (Number.isNaN(input.getTime())) throw new InvalidInputError(path, "is an invalid Date");
        return input.toISOString();
      }
      if (seen.has(input)) throw new InvalidInputError(path, "contains a reference cycle");
      seen.add(input);
      try {
        if (Array.isArray(input)) {
          // JSON turns holes and undefined array items into null; do the same rather than shift indexes.
          return Array.from(input, (item, index) =>
            item === undefined ? null : convert(item, `${path}[${index}]`, seen),
          );
        }
        const result: Record<string, Value> = {};
        for (const [key, item] of Object.entries(input)) {
          if (item !== undefined) result[key] = convert(item, `${path}.${key}`, seen);
        }
        return result;
      } finally {
        seen.delete(input);
      }
    }
    default:
      throw new InvalidInputError(path, `${describe(input)} cannot be sent to the PDP`);
  }
}

function describe(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "an array";
  return `a ${typeof input}`;
}
