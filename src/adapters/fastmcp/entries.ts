import { type Admits, type Barrier, behindBarrier } from "./admission.ts";

/** A FastMCP tool, resource, resource template or prompt, as far as hopguard touches it. */
type Entry = Record<string, unknown>;
type Fn = (...args: unknown[]) => unknown;

/** The app methods that register entries, and which kind each registers (one entry, or an array of them). */
const registrations = {
  addTool: "tool",
  addTools: "tool",
  addResource: "resource",
  addResources: "resource",
  addResourceTemplate: "template",
  addResourceTemplates: "template",
  addPrompt: "prompt",
  addPrompts: "prompt",
} as const;

type Kind = (typeof registrations)[keyof typeof registrations];

/**
 * Makes every registration method of `app` put the entry's own code — a tool's `execute`, a resource's, template's
 * or prompt's `load`, every `complete` — behind the barrier before FastMCP stores it.
 */
export function guardRegistrations(app: object, barrier: Barrier): void {
  for (const [method, kind] of Object.entries(registrations) as [keyof typeof registrations, Kind][]) {
    const register = (app as Record<string, unknown>)[method];
    if (typeof register !== "function") continue;
    Object.defineProperty(app, method, {
      value: (entries: unknown) =>
        register.call(
          app,
          Array.isArray(entries)
            ? entries.map((entry) => guardEntry(kind, entry, barrier))
            : guardEntry(kind, entries, barrier),
        ),
      writable: false,
      configurable: false,
      enumerable: false,
    });
  }
}

function guardEntry(kind: Kind, entry: unknown, barrier: Barrier): unknown {
  // Not an object: FastMCP's own checks answer it, as they would without hopguard.
  if (typeof entry !== "object" || entry === null) return entry;
  const source = entry as Entry;
  const name = typeof source.name === "string" ? source.name : undefined;
  const guarded: Entry = { ...source };
  const wrap = (key: string, admits: Admits) => {
    const fn = source[key];
    if (typeof fn === "function") guarded[key] = behindBarrier(barrier, admits, (fn as Fn).bind(source));
  };
  switch (kind) {
    case "tool":
      wrap("execute", { method: "tools/call", name });
      break;
    case "resource":
    case "template":
      // A tool the guard admitted may embed the server's own resources (`app.embedded(uri)` runs `load`).
      wrap("load", { method: "resources/read", within: ["tools/call"] });
      break;
    case "prompt":
      wrap("load", { method: "prompts/get", name });
      break;
  }
  if (kind === "template" || kind === "prompt") {
    // A completion names its prompt or template in `ref`, not in `params.name`: admitted as completion/complete.
    wrap("complete", completion);
    if (Array.isArray(source.arguments)) guarded.arguments = guardArguments(source.arguments, barrier);
  }
  return guarded;
}

const completion: Admits = { method: "completion/complete" };

/** Each argument's own `complete`, behind the barrier; anything else about the arguments as it was. */
function guardArguments(value: readonly unknown[], barrier: Barrier): unknown[] {
  return value.map((argument: unknown) => {
    if (typeof argument !== "object" || argument === null) return argument;
    const complete = (argument as Entry).complete;
    return typeof complete === "function"
      ? {
          ...argument,
          complete: behindBarrier(barrier, completion, (complete as Fn).bind(argument)),
        }
      : argument;
  });
}
