import { describe, expect, test } from "vitest";
import { InvalidInputError } from "../src/errors.ts";
import { type EffectiveScope, narrowScope, rootScope, scopeAdmitsTool, scopeAttribute } from "../src/scope.ts";

const root = (tools?: string[]): EffectiveScope => rootScope(tools === undefined ? {} : { tools }, 5, "scope");

describe("tool patterns", () => {
  test.each([
    ["filesystem/read_*", "filesystem", "read_file", true],
    ["filesystem/read_*", "filesystem", "write_file", false],
    ["filesystem/*", "filesystem", "a/b", true],
    ["*/search", "memory", "search", true],
    ["*/search", "memory", "search_nodes", false],
    ["file*/read_file", "filesystem", "read_file", true],
    ["file*/read_file", "memory", "read_file", false],
    ["filesystem/read_file", "filesystem", "read_file", true],
    ["filesystem/read_file", "filesystem", "read_file_x", false],
    ["filesystem/read_file", "filesystem", "*", false],
  ])("%s admits %s/%s: %s", (pattern, server, tool, admitted) => {
    expect(scopeAdmitsTool(root([pattern]), server, tool)).toBe(admitted);
  });

  test("no tools field admits everything; an empty list admits nothing", () => {
    expect(scopeAdmitsTool(root(), "anything", "at_all")).toBe(true);
    expect(scopeAdmitsTool(root([]), "filesystem", "read_file")).toBe(false);
  });

  test.each([["read_file"], ["/read_file"], ["filesystem/"], [""]])("%j is not a server/tool pattern", (pattern) => {
    expect(() => root([pattern])).toThrow(InvalidInputError);
  });
});

describe("narrowing", () => {
  test.each([
    [["filesystem/*"], ["filesystem/read_*"]],
    [["filesystem/*"], ["filesystem/read_file", "filesystem/list_directory"]],
    [["*/*"], ["memory/*"]],
    [["filesystem/read_*"], ["filesystem/read_*"]],
    [["filesystem/read_*"], ["filesystem/read_text_*"]],
    [
      ["*/read_*", "memory/*"],
      ["filesystem/read_file", "memory/search_nodes"],
    ],
  ])("%j may narrow to %j", (parent, child) => {
    const narrowed = narrowScope(root(parent), { tools: child }, "agent.scope");
    expect(narrowed).toEqual({ tools: child, expiresAt: undefined, maxDepth: 5 });
  });

  test.each([
    [["filesystem/read_*"], ["filesystem/*"]],
    [["filesystem/read_*"], ["*/read_*"]],
    [["filesystem/read_file"], ["filesystem/read_file*"]],
    [["filesystem/read_*"], ["filesystem/read_file", "memory/read_graph"]],
    [[], ["filesystem/read_file"]],
  ])("%j may not widen to %j", (parent, child) => {
    const widened = narrowScope(root(parent), { tools: child }, "agent.scope");
    expect(widened).toMatchObject({ field: "tools" });
  });

  test("an unrestricted parent lets a child pick any tools; an absent request inherits", () => {
    expect(narrowScope(root(), { tools: ["x/y"] }, "s")).toMatchObject({ tools: ["x/y"] });
    expect(narrowScope(root(["a/b"]), {}, "s")).toMatchObject({ tools: ["a/b"] });
  });

  test("expiry and depth only shrink", () => {
    const parent = rootScope({ expiresAt: 2_000_000_000_000, maxDepth: 3 }, 5, "scope");
    expect(narrowScope(parent, { expiresAt: 1_900_000_000_000, maxDepth: 2 }, "s")).toEqual({
      tools: undefined,
      expiresAt: 1_900_000_000_000,
      maxDepth: 2,
    });
    expect(narrowScope(parent, { expiresAt: 2_100_000_000_000 }, "s")).toMatchObject({ field: "expiresAt" });
    expect(narrowScope(parent, { maxDepth: 4 }, "s")).toMatchObject({ field: "maxDepth" });
  });

  test("the root never exceeds the guard's maxDepth", () => {
    expect(rootScope({ maxDepth: 9 }, 5, "scope").maxDepth).toBe(5);
  });

  test("bad expiries and depths are typed errors", () => {
    expect(() => rootScope({ expiresAt: "next tuesday" }, 5, "scope")).toThrow(InvalidInputError);
    expect(() => rootScope({ maxDepth: 1.5 }, 5, "scope")).toThrow(InvalidInputError);
  });
});

test("the scope attribute is plain JSON with no undefined values", () => {
  expect(scopeAttribute(rootScope({ tools: ["a/b"], expiresAt: 0 }, 5, "scope"))).toEqual({
    tools: ["a/b"],
    expiresAt: "1970-01-01T00:00:00.000Z",
    maxDepth: 5,
  });
  expect(scopeAttribute(root())).toEqual({ maxDepth: 5 });
});
