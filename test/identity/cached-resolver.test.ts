import { afterEach, describe, expect, test, vi } from "vitest";
import { cachedResolver, InvalidInputError, type Profile, type ResolverContext } from "../../src/index.ts";

const alice: Profile = { roles: ["user"], attr: { department: "engineering" } };

/** A resolver that records every id it is asked about and answers with `answer(id)`. */
function counting(
  answer: (id: string, context: ResolverContext) => Profile | undefined | Promise<Profile | undefined>,
) {
  const asked: string[] = [];
  const resolve = (id: string, context: ResolverContext) => {
    asked.push(id);
    return answer(id, context);
  };
  return { asked, resolve };
}

/** A promise and the functions that settle it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("cachedResolver", () => {
  test("an answer is reused within its TTL and asked for again once the TTL has passed", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(1_000_000);
    const { asked, resolve } = counting(() => alice);
    const user = cachedResolver(resolve, { ttlMs: 1000 });

    expect(await user("alice")).toBe(alice);
    vi.setSystemTime(1_000_999);
    expect(await user("alice")).toBe(alice);
    expect(asked).toEqual(["alice"]);

    vi.setSystemTime(1_001_000);
    expect(await user("alice")).toBe(alice);
    expect(asked).toEqual(["alice", "alice"]);
  });

  test("past maxEntries the least recently used answer is dropped", async () => {
    const { asked, resolve } = counting(() => alice);
    const user = cachedResolver(resolve, { maxEntries: 2 });

    for (const id of ["alice", "bob", "alice", "carol"]) await user(id);
    // "alice" was used after "bob", so adding "carol" dropped "bob".
    expect(asked).toEqual(["alice", "bob", "carol"]);
    await user("alice");
    await user("carol");
    expect(asked).toEqual(["alice", "bob", "carol"]);
    await user("bob");
    expect(asked).toEqual(["alice", "bob", "carol", "bob"]);
  });

  test("ten concurrent look-ups of one key share one request", async () => {
    const answer = deferred<Profile>();
    const { asked, resolve } = counting(() => answer.promise);
    const user = cachedResolver(resolve);

    const lookUps = Array.from({ length: 10 }, () => user("alice"));
    answer.resolve(alice);

    expect(await Promise.all(lookUps)).toEqual(Array.from({ length: 10 }, () => alice));
    expect(asked).toEqual(["alice"]);
  });

  test("a failure is not cached: the next look-up asks again, and its answer is cached", async () => {
    let calls = 0;
    const user = cachedResolver(async () => {
      calls++;
      if (calls === 1) throw new Error("directory restarting");
      return alice;
    });

    await expect(user("alice")).rejects.toThrow("directory restarting");
    expect(await user("alice")).toBe(alice);
    expect(await user("alice")).toBe(alice);
    expect(calls).toBe(2);
  });

  test("concurrent callers all see a shared failure, and none of them caches it", async () => {
    const failing = deferred<Profile>();
    let answer: Promise<Profile> | Profile = failing.promise;
    const { asked, resolve } = counting(() => answer);
    const user = cachedResolver(resolve);

    const lookUps = Array.from({ length: 3 }, () => user("alice"));
    failing.reject(new Error("LDAP down"));

    const outcomes = await Promise.allSettled(lookUps);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(asked).toEqual(["alice"]);
    answer = alice;
    expect(await user("alice")).toBe(alice);
    expect(asked).toEqual(["alice", "alice"]);
  });

  test('"unknown" (undefined) is not cached, so a user added to the directory is recognised at once', async () => {
    const known = new Map<string, Profile>();
    const { asked, resolve } = counting((id) => known.get(id));
    const user = cachedResolver(resolve);

    expect(await user("dana")).toBeUndefined();
    known.set("dana", alice);
    expect(await user("dana")).toBe(alice);
    expect(asked).toEqual(["dana", "dana"]);
  });

  test("a resolver that never settles is cut off at timeoutMs, its signal aborted, and nothing is cached", async () => {
    const signals: AbortSignal[] = [];
    const { asked, resolve } = counting((_id, { signal }) => {
      signals.push(signal);
      return new Promise<never>(() => {});
    });
    const user = cachedResolver(resolve, { timeoutMs: 20 });

    await expect(user("alice")).rejects.toMatchObject({ name: "DeadlineExceeded", timeoutMs: 20 });
    expect(signals[0]?.aborted).toBe(true);
    await expect(user("alice")).rejects.toMatchObject({ name: "DeadlineExceeded" });
    expect(asked).toEqual(["alice", "alice"]);
  });

  test("one caller giving up stops its own wait, not the request others share", async () => {
    const answer = deferred<Profile>();
    const { asked, resolve } = counting(() => answer.promise);
    const user = cachedResolver(resolve);
    const impatient = new AbortController();

    const first = user("alice", { signal: impatient.signal });
    const second = user("alice");
    impatient.abort(new Error("caller left"));
    answer.resolve(alice);

    await expect(first).rejects.toThrow("caller left");
    expect(await second).toBe(alice);
    expect(await user("alice")).toBe(alice);
    expect(asked).toEqual(["alice"]);
  });

  test("invalidate forgets one answer or all; a look-up running when it was called is not cached", async () => {
    const slow = deferred<Profile>();
    let answer: Profile | Promise<Profile> = alice;
    const { asked, resolve } = counting(() => answer);
    const user = cachedResolver(resolve);

    await user("alice");
    await user("bob");
    user.invalidate("alice");
    await user("alice");
    await user("bob");
    expect(asked).toEqual(["alice", "bob", "alice"]);

    user.invalidate();
    answer = slow.promise;
    const running = user("alice");
    user.invalidate("alice");
    slow.resolve(alice);
    expect(await running).toBe(alice);
    answer = alice;
    await user("alice");
    expect(asked).toEqual(["alice", "bob", "alice", "alice", "alice"]);
  });

  test("objects are keyed by their JSON unless given a key", async () => {
    const { asked, resolve } = counting(() => alice);
    const byJson = cachedResolver((input: { id: string }, context: ResolverContext) => resolve(input.id, context));
    await byJson({ id: "alice" });
    await byJson({ id: "alice" });
    await byJson({ id: "bob" });
    expect(asked).toEqual(["alice", "bob"]);

    const byTenant = cachedResolver(
      (input: { id: string; tenant: string }, context: ResolverContext) => resolve(input.id, context),
      { key: (input) => input.tenant },
    );
    await byTenant({ id: "carol", tenant: "acme" });
    await byTenant({ id: "dave", tenant: "acme" });
    expect(asked).toEqual(["alice", "bob", "carol"]);
  });

  test.each([
    ["ttlMs", { ttlMs: -1 }],
    ["ttlMs", { ttlMs: Number.NaN }],
    ["maxEntries", { maxEntries: 0 }],
    ["maxEntries", { maxEntries: 1.5 }],
    ["timeoutMs", { timeoutMs: 0 }],
    ["timeoutMs", { timeoutMs: Number.POSITIVE_INFINITY }],
  ])("refuses a bad %s (%o)", (field, options) => {
    expect(() => cachedResolver(() => alice, options)).toThrow(
      expect.objectContaining({ code: "invalid_input", path: `options.${field}` }),
    );
    expect(() => cachedResolver("nope" as never)).toThrow(InvalidInputError);
  });
});
