import { describe, expect, test } from "vitest";
import { toAttributeRecord, toAttributeValue } from "../src/attribute-value.ts";
import { InvalidInputError } from "../src/errors.ts";

describe("attribute values", () => {
  test("follow JSON: undefined properties are dropped, undefined array items become null, dates become ISO", () => {
    expect(
      toAttributeValue({ a: 1, b: undefined, c: [1, undefined], d: new Date(0), e: { f: null } }, "arguments"),
    ).toEqual({ a: 1, c: [1, null], d: "1970-01-01T00:00:00.000Z", e: { f: null } });
  });

  test.each([
    [{ n: 1n }, "arguments.n"],
    [{ f: () => 1 }, "arguments.f"],
    [{ s: Symbol("x") }, "arguments.s"],
    [{ x: Number.NaN }, "arguments.x"],
    [{ list: [1, Number.POSITIVE_INFINITY] }, "arguments.list[1]"],
    [{ when: new Date(Number.NaN) }, "arguments.when"],
  ])("%o cannot be sent: the error names %s", (input, path) => {
    expect(() => toAttributeValue(input, "arguments")).toThrow(expect.objectContaining({ path }));
  });

  test("a reference cycle is an error, a shared (acyclic) object is not", () => {
    const shared = { k: 1 };
    expect(toAttributeValue({ a: shared, b: shared }, "x")).toEqual({ a: { k: 1 }, b: { k: 1 } });
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => toAttributeValue(cyclic, "x")).toThrow(InvalidInputError);
  });

  test("a record must be an object; nothing at all is an empty record", () => {
    expect(toAttributeRecord(undefined, "attr")).toEqual({});
    expect(() => toAttributeRecord(["a"], "attr")).toThrow(/plain object/);
    expect(() => toAttributeRecord("a", "attr")).toThrow(/plain object/);
  });
});

describe("attribute values are one snapshot of what JSON would carry", () => {
  test("toJSON is honoured, as on the wire: a URL, a Date, a decimal-like type become what JSON.stringify sends", () => {
    const decimal = { digits: "1", scale: 2, toJSON: () => "0.01" };
    const input = { url: new URL("https://example.com/a/../b"), when: new Date(0), amount: decimal };
    const snapshot = toAttributeValue(input, "arguments");
    expect(snapshot).toEqual(JSON.parse(JSON.stringify(input)));
    expect(snapshot).toEqual({ url: "https://example.com/b", when: "1970-01-01T00:00:00.000Z", amount: "0.01" });
  });

  test("each property is read once: a getter cannot answer the PDP one thing and the tool another", () => {
    let reads = 0;
    const input = {
      get path() {
        reads += 1;
        return reads === 1 ? "/workspace/alice/a.md" : "/etc/passwd";
      },
    };
    expect(toAttributeValue(input, "arguments")).toEqual({ path: "/workspace/alice/a.md" });
    expect(reads).toBe(1);
  });

  test("a __proto__ key stays an own key, as JSON.parse makes it on the server", () => {
    const input = JSON.parse('{"__proto__": {"path": "/etc/passwd"}, "path": "/workspace/alice/a.md"}');
    const snapshot = toAttributeRecord(input, "arguments");
    expect(Object.hasOwn(snapshot, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(snapshot)).toBe(Object.prototype);
    expect(JSON.stringify(snapshot)).toBe(JSON.stringify(input));
  });

  test("boxed primitives are unboxed, as JSON does", () => {
    const input = { n: Object(1), s: Object("a"), b: Object(false) };
    expect(toAttributeValue(input, "arguments")).toEqual({ n: 1, s: "a", b: false });
  });

  test("the snapshot is fresh data: changing the input afterwards changes nothing in it", () => {
    const input = { path: "/workspace/alice/a.md", nested: { list: [1, 2] } };
    const snapshot = toAttributeValue(input, "arguments");
    input.path = "/etc/passwd";
    input.nested.list.push(3);
    expect(snapshot).toEqual({ path: "/workspace/alice/a.md", nested: { list: [1, 2] } });
  });

  test("too large or too deep input is refused with the path, never truncated", () => {
    expect(() => toAttributeValue({ text: "x".repeat(11) }, "arguments", { maxChars: 10, maxDepth: 8 })).toThrow(
      expect.objectContaining({ path: "arguments.text", message: expect.stringMatching(/larger than 10 characters/) }),
    );
    let deep: unknown = "leaf";
    for (let level = 0; level < 9; level++) deep = { deep };
    expect(() => toAttributeValue(deep, "arguments", { maxChars: 100, maxDepth: 8 })).toThrow(/deeper than 8 levels/);
    expect(toAttributeValue({ a: { b: "c" } }, "arguments", { maxChars: 3, maxDepth: 2 })).toEqual({ a: { b: "c" } });
  });

  test("a toJSON that returns something JSON cannot carry is refused too", () => {
    expect(() => toAttributeValue({ x: { toJSON: () => 1n } }, "arguments")).toThrow(
      expect.objectContaining({ path: "arguments.x" }),
    );
  });
});
