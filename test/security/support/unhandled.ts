import { afterAll, beforeAll } from "vitest";

/**
 * Collects every unhandled promise rejection while the file's tests run: a test asserts the list is empty. Vitest
 * reports them too, but only at the end of the run and without saying which test caused them.
 */
export function watchUnhandledRejections(): unknown[] {
  const reasons: unknown[] = [];
  const record = (reason: unknown): void => {
    reasons.push(reason);
  };
  beforeAll(() => {
    process.on("unhandledRejection", record);
  });
  afterAll(() => {
    process.off("unhandledRejection", record);
  });
  return reasons;
}

/** Lets every pending macrotask (timer callbacks due now, I/O callbacks, `setImmediate`s) and microtask run. */
export function drainTasks(): Promise<void> {
  return new Promise((settle) => setTimeout(() => setImmediate(settle), 0));
}
