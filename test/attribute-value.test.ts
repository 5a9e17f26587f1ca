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
