import { getEventListeners } from "node:events";
import { describe, expect, test } from "vitest";
import { DeadlineExceeded, withDeadline } from "../src/deadline.ts";

describe("withDeadline", () => {
  test("a request that never settles is given up at the deadline, and its signal is aborted", async () => {
    let seen: AbortSignal | undefined;
    const pending = withDeadline(20, undefined, (signal) => {
      seen = signal;
      return new Promise<never>(() => {});
    });
    await expect(pending).rejects.toBeInstanceOf(DeadlineExceeded);
    expect(seen?.aborted).toBe(true);
  });

  test("a late answer is dropped: the caller saw the time-out, never the value", async () => {
    let answer: (value: string) => void = () => {};
    const outcome = withDeadline(10, undefined, () => new Promise<string>((settle) => (answer = settle))).then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    await new Promise((settle) => setTimeout(settle, 30));
    answer("ALLOW");
    expect(await outcome).toEqual({ error: expect.any(DeadlineExceeded) });
  });

  test("an answer in time resolves, and leaves no timer or abort listener behind", async () => {
    const outer = new AbortController();
    const before = process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    await expect(withDeadline(60_000, outer.signal, async () => "ok")).resolves.toBe("ok");
    expect(process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length).toBe(before);
    expect(getEventListeners(outer.signal, "abort")).toHaveLength(0);
  });

  test("the caller's abort rejects at once with its reason and aborts the request", async () => {
    const outer = new AbortController();
    let seen: AbortSignal | undefined;
    const pending = withDeadline(60_000, outer.signal, (signal) => {
      seen = signal;
      return new Promise<never>(() => {});
    });
    outer.abort(new Error("user pressed stop"));
    await expect(pending).rejects.toThrow("user pressed stop");
    expect(seen?.aborted).toBe(true);
  });

  test("an already aborted signal never starts the request", async () => {
    let started = false;
    const pending = withDeadline(1000, AbortSignal.abort(new Error("gone")), async () => {
      started = true;
    });
    await expect(pending).rejects.toThrow("gone");
    expect(started).toBe(false);
  });

  test("a request that throws synchronously rejects with that error", async () => {
    await expect(
      withDeadline(1000, undefined, () => {
        throw new TypeError("broken client");
      }),
    ).rejects.toThrow("broken client");
  });
});
