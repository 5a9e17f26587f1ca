import { AsyncLocalStorage } from "node:async_hooks";
import type { Tracer } from "@opentelemetry/api";
import { HopguardError } from "../../errors.ts";
import { SpanNames } from "../../telemetry.ts";
import { type RefusalTarget, recordRefusal } from "../mcp/server/refusals.ts";
import { promptServer, resourceServer } from "../mcp/server/server-checks.ts";

/** A request the session guard let through: the method, and the tool or prompt it named. */
export interface Admission {
  readonly method: string;
  readonly name: string | undefined;
}

const admissions = new AsyncLocalStorage<Admission>();

/** Runs `fn` (a guarded session's handler, with its guard in front) as the admission of `request`. */
export function admit<T>(request: { method?: unknown; params?: unknown }, fn: () => T): T {
  const params = typeof request.params === "object" && request.params !== null ? request.params : {};
  const name = (params as { name?: unknown }).name;
  return admissions.run({ method: String(request.method), name: typeof name === "string" ? name : undefined }, fn);
}

/** How one guarded app refuses user code that no session guard admitted. */
export interface Barrier {
  readonly server: string;
  readonly tracer: Tracer;
}

/** What a barrier lets through: requests of `method`, and when `name` is given, only those naming it. */
export interface Admits {
  readonly method: string;
  readonly name?: string | undefined;
  /** Other methods whose admitted requests may run the function too (a tool embedding a resource). */
  readonly within?: readonly string[] | undefined;
}

/**
 * Wraps one of the app's own functions (a tool's `execute`, a loader, a completer) so that it runs only inside a
 * request the session guard admitted. Anything else — a session FastMCP never announced (stateless HTTP), a request
 * dispatched before FastMCP announced its session — is refused before the function runs, with a
 * `hopguard.authorize` span that says so.
 */
export function behindBarrier<A extends unknown[], R>(
  barrier: Barrier,
  admits: Admits,
  fn: (...args: A) => R,
): (...args: A) => Promise<R> {
  const { method, name, within = [] } = admits;
  return async (...args) => {
    const admission = admissions.getStore();
    const admitted =
      admission !== undefined &&
      ((admission.method === method && (name === undefined || admission.name === name)) ||
        within.includes(admission.method));
    if (admitted) return fn(...args);
    const target = barrierTarget(barrier.server, method, name);
    const error = new HopguardError(
      "authorization_failed",
      `hopguard refused ${method}${name === undefined ? "" : ` of ${name}`}: no guarded session admitted it (a stateless HTTP request, or one that arrived before FastMCP announced its session)`,
    );
    await recordRefusal(barrier.tracer, SpanNames.authorize, target, error);
    throw error;
  };
}

function barrierTarget(server: string, method: string, name: string | undefined): RefusalTarget {
  if (method === "prompts/get") return { server: promptServer(server), tool: name };
  if (method === "resources/read") return { server: resourceServer(server) };
  return { server, tool: name };
}
