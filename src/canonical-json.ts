/**
 * Canonical JSON: object keys sorted, `undefined` properties dropped as JSON drops them. Two values a receiver of
 * their JSON cannot tell apart get one text, and two it can tell apart never share one: what plan-cache keys, the
 * MCP gate's admission tickets and the adapters' reused decisions compare. `undefined` for anything JSON cannot carry
 * (functions, non-finite numbers, class instances, cycles): such a value matches nothing.
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

/** Whether `value` can no longer change: frozen all the way down (a JSON text of it may be kept with it). */
export function isDeeplyFrozen(value: unknown, depth = 0): boolean {
  if (typeof value !== "object" || value === null) return true;
  if (depth > 100 || !Object.isFrozen(value)) return false;
  if (frozenTexts.has(value)) return true;
  return Object.values(value).every((item) => isDeeplyFrozen(item, depth + 1));
}
