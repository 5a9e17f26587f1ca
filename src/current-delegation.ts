import { AsyncLocalStorage } from "node:async_hooks";
import type { Delegation } from "./delegation.ts";

const storage = new AsyncLocalStorage<Delegation>();

/**
 * Runs `fn` with `delegation` as the ambient chain: guarded tools called anywhere inside it (including sub-agents and
 * tools that run after an `await`) act for that chain unless given one explicitly.
 *
 * @example
 * ```ts
 * await runAs(await alice.delegate(planner), () => agent.invoke({ messages }));
 * ```
 */
export function runAs<T>(delegation: Delegation, fn: () => T): T {
  return storage.run(delegation, fn);
}

/** The chain set by the nearest enclosing {@link runAs}, or `undefined` outside any. */
export function currentDelegation(): Delegation | undefined {
  return storage.getStore();
}
