import { InvalidInputError } from "../../errors.ts";

/** A JSON object, as `JSON.parse` makes it. */
export type JsonObject = Record<string, unknown>;

/**
 * A JSON copy of `value`, read once the way a transport serializes it: `toJSON` honoured, each getter read once,
 * `__proto__` kept as an own key. The copy is what hopguard inspects and what goes on, so nothing the caller still
 * holds can change it afterwards. What JSON cannot carry (cycles, bigints, a bare `undefined`) is an
 * {@link InvalidInputError}, never a silent change.
 */
export function jsonSnapshot(value: unknown, path: string): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new InvalidInputError(path, `cannot be sent as JSON (${error instanceof Error ? error.message : error})`);
  }
  if (text === undefined) throw new InvalidInputError(path, "cannot be sent as JSON");
  return JSON.parse(text);
}

/** Whether `value` is a JSON object (not an array, not null). */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An own property of a JSON object: inherited names such as `constructor` never answer. */
export function own(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}
