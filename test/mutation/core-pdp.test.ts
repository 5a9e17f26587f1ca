import { getEventListeners } from "node:events";
import { Effect, Status } from "@cerbos/core";
import { afterEach, describe, expect, test, vi } from "vitest";
import { approvalRequest } from "../../src/approval.ts";
import { toAttributeRecord, toAttributeValue } from "../../src/attribute-value.ts";
import { DeadlineExceeded, withDeadline } from "../../src/deadline.ts";
import type { Decision } from "../../src/decision.ts";
import { createGuard, decideToolCall, InvalidInputError, PdpUnavailableError } from "../../src/index.ts";
import { alice } from "../support/users.ts";
import { type FakeResult, fakePdp } from "./fake-pdp.ts";

const readNotes = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };

function invalid(attempt: () => unknown): InvalidInputError {
  try {
    attempt();
  } catch (error) {
    expect(InvalidInputError.isInstance(error), `expected an InvalidInputError, got ${String(error)}`).toBe(true);
    return error as InvalidInputError;
  }
  throw new Error("expected a throw");
}

afterEach(() => {
  vi.useRealTimers();
});

describe("snapshots read input the way JSON does", () => {
  test("toJSON gets the key JSON would give it, top-level included; Dates become ISO strings", () => {
    const keyed = { toJSON: (key: string) => `key=${key}` };
    expect(toAttributeValue(keyed, "p")).toBe("key=");
    expect(toAttributeValue({ a: keyed, b: [keyed] }, "p")).toEqual({ a: "key=a", b: ["key=0"] });
    expect(toAttributeValue({ when: new Date(Date.UTC(2030, 0, 1)) }, "p")).toEqual({
      when: "2030-01-01T00:00:00.000Z",
    });
  });

  test("a bigint with a toJSON is what its toJSON says, as JSON.stringify does", () => {
    const prototype = BigInt.prototype as unknown as { toJSON?: () => string };
    prototype.toJSON = function (this: bigint) {
      return `${this}n`;
    };
    try {
      expect(toAttributeValue({ big: 12n }, "p")).toEqual({ big: "12n" });
    } finally {
      delete prototype.toJSON;
    }
    expect(invalid(() => toAttributeValue({ big: 12n }, "p")).message).toBe("p.big: a bigint cannot be sent as JSON");
  });

  test("nulls stay nulls, undefined items become null, results are plain writable data", () => {
    const value = toAttributeValue({ a: null, b: [null, undefined, 1], c: undefined }, "p") as Record<string, unknown>;
    expect(value).toEqual({ a: null, b: [null, null, 1] });
    expect(Object.getOwnPropertyDescriptor(value, "a")).toEqual({
      value: null,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  });

  test("what JSON cannot carry is refused, naming the path", () => {
    expect(invalid(() => toAttributeValue(undefined, "p")).message).toBe("p: a undefined cannot be sent as JSON");
    expect(invalid(() => toAttributeValue({ f: () => 1 }, "p")).message).toBe("p.f: a function cannot be sent as JSON");
    expect(invalid(() => toAttributeValue({ d: new Date(Number.NaN) }, "p")).message).toBe("p.d: is an invalid Date");
    expect(invalid(() => toAttributeValue({ n: Number.POSITIVE_INFINITY }, "p")).message).toBe(
      "p.n: Infinity cannot be sent as JSON",
    );
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(invalid(() => toAttributeValue(cycle, "p")).message).toBe("p.self: contains a reference cycle");
  });

  test("a record must be a plain object, whatever its toJSON returns", () => {
    expect(toAttributeRecord(null, "p")).toEqual({});
    expect(invalid(() => toAttributeRecord({ toJSON: () => null }, "p")).message).toBe(
      "p: must be a plain object, got null",
    );
    expect(invalid(() => toAttributeRecord({ toJSON: () => [1] }, "p")).message).toBe(
      "p: must be a plain object, got an array",
    );
    expect(invalid(() => toAttributeRecord({ toJSON: () => 5 }, "p")).message).toBe(
      "p: must be a plain object, got a number",
    );
  });
});

describe("approvalRequest reads only approval outputs", () => {
  function allowedWith(values: unknown[]): Decision {
    return {
      allowed: true,
      outputs: values.map((value, index) => ({ principalId: `hop${index}`, source: "rule", value })),
    } as unknown as Decision;
  }

  test("outputs that are not an approval object ask for nothing", () => {
    expect(approvalRequest(allowedWith([undefined, null, "required", ["approval"], { other: 1 }]))).toBeUndefined();
    expect(approvalRequest(allowedWith([{ approval: "optional" }]))).toBeUndefined();
  });

  test("only approval outputs ask, only string reasons are kept", () => {
    expect(
      approvalRequest(
        allowedWith([{ note: 1 }, { approval: "required", reason: 42 }, { approval: "required", reason: "why" }]),
      ),
    ).toEqual({ reasons: ["why"], requestedBy: ["hop1", "hop2"] });
  });

  test("an allowed call whose rules emitted other outputs is plainly allowed", async () => {
    const pdp = fakePdp(() => ({ outputs: [{ action: "read_file", source: "r", value: { audit: true } }] }));
    const outcome = await decideToolCall(createGuard({ client: pdp.client }).forUser(alice), readNotes);
    expect(outcome.type).toBe("allowed");
  });
});

describe("hop checks read the PDP's answer precisely", () => {
  async function decide(result: FakeResult) {
    const pdp = fakePdp(() => result);
    return createGuard({ client: pdp.client }).forUser(alice).authorize(readNotes);
  }

  test("outputs for another action are not this call's; missing outputs and metadata are empty", async () => {
    const decision = await decide({
      outputs: [
        { action: "write_file", source: "w", value: { approval: "required" } },
        { action: "read_file", source: "r", value: { approval: "required", reason: "look" } },
      ],
    });
    expect(decision.outputs).toEqual([
      { principalId: "alice", source: "r", value: { approval: "required", reason: "look" } },
    ]);
    const bare = await decide({ outputs: undefined, metadata: undefined });
    expect(bare.allowed).toBe(true);
    expect(bare.outputs).toEqual([]);
    expect(bare.hops[0]?.policy).toBe("");
    const partial = await decide({ effect: Effect.DENY, metadata: { actions: {} } });
    // The only hop matched no policy at all: the reason names the kind (usually a misspelt server), not the hop.
    expect(partial.reason).toBe(
      "no Cerbos policy for resource kind mcp::filesystem: every hop was denied by default (is the server name right?)",
    );
  });

  async function failure(answer: () => Promise<FakeResult> | FakeResult, signal?: AbortSignal) {
    const pdp = fakePdp(answer);
    const guard = createGuard({ client: pdp.client, timeoutMs: 40 });
    const error = await guard
      .forUser(alice)
      .authorize(readNotes, { signal })
      .then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
    expect(PdpUnavailableError.isInstance(error), `expected a PdpUnavailableError, got ${String(error)}`).toBe(true);
    return { error: error as PdpUnavailableError, pdp };
  }

  test("an answer about another resource, or none that can be read, is no answer", async () => {
    const other = await failure(() => ({ resource: { kind: "mcp::filesystem", id: "write_file" } }));
    expect(other.error.failure).toBe("error");
    expect(other.error.message).toBe(
      'PDP answered about another resource than mcp::filesystem/read_file for user "alice"',
    );
    const unreadable = await failure(() => ({
      response: {
        get results(): never {
          throw new Error("unreadable");
        },
      },
    }));
    expect(unreadable.error.message).toBe('PDP answered user "alice" with a malformed response');
    expect((unreadable.error.cause as Error).message).toBe("unreadable");
    for (const response of [undefined, null, {}, { results: [] }, { results: [undefined] }]) {
      const missing = await failure(() => ({ response }));
      expect(missing.error.message).toBe(
        'PDP answered about another resource than mcp::filesystem/read_file for user "alice"',
      );
    }
    const kindless = await failure(() => ({ response: { results: [{ actions: {} }] } }));
    expect(kindless.error.message).toMatch(/^PDP answered about another resource/);
  });

  test("a silent PDP times out for the whole round, and the client's signal is aborted", async () => {
    const { error, pdp } = await failure(() => new Promise<never>(() => {}));
    expect(error.failure).toBe("timeout");
    expect(error.message).toBe("PDP did not answer within 40 ms checking the chain");
    expect(error.cause).toBeInstanceOf(DeadlineExceeded);
    expect(pdp.signals[0]?.aborted).toBe(true);
  });

  test("an abort by the caller is 'aborted', with the caller's reason as cause", async () => {
    const controller = new AbortController();
    const reason = new Error("user went away");
    const { error } = await failure(() => {
      controller.abort(reason);
      return new Promise<never>(() => {});
    }, controller.signal);
    expect(error.failure).toBe("aborted");
    expect(error.message).toBe("PDP request aborted checking the chain");
    expect(error.cause).toBe(reason);
  });

  const grpc = (code: Status, details: string) => Object.assign(new Error(details), { code, details });
  test.each([
    [grpc(Status.UNAVAILABLE, "down"), "unreachable", 'PDP unreachable checking user "alice": down'],
    [grpc(Status.CANCELLED, "gone"), "aborted", 'PDP request aborted checking user "alice": gone'],
    [grpc(Status.PERMISSION_DENIED, "no"), "error", 'PDP answered PERMISSION_DENIED checking user "alice": no'],
    [Object.assign(new Error("half"), { code: 14 }), "error", 'PDP request failed checking user "alice": half'],
    [{ code: 14, details: "not an Error" }, "error", 'PDP request failed checking user "alice": [object Object]'],
    [
      Object.assign(new Error("stop"), { name: "AbortError" }),
      "aborted",
      'PDP request failed checking user "alice": stop',
    ],
    [new Error("boom"), "error", 'PDP request failed checking user "alice": boom'],
  ])("a client failing with %s is a PdpUnavailableError %s", async (thrownByClient, kind, message) => {
    const { error } = await failure(() => Promise.reject(thrownByClient));
    expect(error.failure).toBe(kind);
    expect(error.message).toBe(message);
    expect(error.cause).toBe(thrownByClient);
  });
});

describe("withDeadline leaves nothing behind", () => {
  test("DeadlineExceeded says how long it waited", () => {
    const error = new DeadlineExceeded(25);
    expect(error.message).toBe("no answer within 25 ms");
    expect(error.name).toBe("DeadlineExceeded");
    expect(error.timeoutMs).toBe(25);
  });

  test("an outer signal already aborted rejects at once, with no timer left", async () => {
    vi.useFakeTimers();
    const outer = new AbortController();
    outer.abort(new Error("too late"));
    const request = vi.fn(async () => "never asked");
    await expect(withDeadline(60_000, outer.signal, request)).rejects.toThrow("too late");
    expect(request).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  test.each([
    [
      "throws",
      () => {
        throw new Error("sync");
      },
    ],
    ["rejects", () => Promise.reject(new Error("async"))],
  ])("a request that %s leaves no timer and no abort listener", async (_, request) => {
    vi.useFakeTimers();
    const outer = new AbortController();
    await expect(withDeadline(60_000, outer.signal, request)).rejects.toThrow();
    expect(vi.getTimerCount()).toBe(0);
    expect(getEventListeners(outer.signal, "abort")).toHaveLength(0);
  });

  test("a time-out removes the abort listener from the outer signal", async () => {
    const outer = new AbortController();
    await expect(withDeadline(10, outer.signal, () => new Promise<never>(() => {}))).rejects.toBeInstanceOf(
      DeadlineExceeded,
    );
    expect(getEventListeners(outer.signal, "abort")).toHaveLength(0);
  });
});
