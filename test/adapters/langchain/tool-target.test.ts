import { describe, expect, test } from "vitest";
import { toolTarget } from "../../../src/adapters/langchain/tool-target.ts";
import { InvalidInputError } from "../../../src/index.ts";

describe("toolTarget", () => {
  test.each([
    // prefixToolNameWithServerName: true
    ["filesystem__read_file", {}, { server: "filesystem", tool: "read_file" }],
    // A tool name of its own with "__" stays whole after the server prefix.
    ["filesystem__read__file", {}, { server: "filesystem", tool: "read__file" }],
    // The default loadMcpTools name, with the server given.
    ["read_file", { server: "filesystem" }, { server: "filesystem", tool: "read_file" }],
    ["filesystem__read_file", { server: "filesystem" }, { server: "filesystem", tool: "read_file" }],
    // additionalToolNamePrefix and the server prefix.
    ["mcp__filesystem__read_file", { server: "filesystem" }, { server: "filesystem", tool: "read_file" }],
    // Only the given server's prefix is removed; anything else is part of the tool.
    ["other__read_file", { server: "filesystem" }, { server: "filesystem", tool: "other__read_file" }],
    ["myfilesystem__read_file", { server: "filesystem" }, { server: "filesystem", tool: "myfilesystem__read_file" }],
    ["__filesystem__read_file", { server: "filesystem" }, { server: "filesystem", tool: "read_file" }],
  ])("%s with %o is %o", (name, options, expected) => {
    expect(toolTarget(name, options)).toEqual(expected);
  });

  test("resolveTool decides alone when given", () => {
    const resolveTool = (name: string) => ({ server: "memory", tool: name.toUpperCase() });
    expect(toolTarget("filesystem__read_file", { server: "filesystem", resolveTool })).toEqual({
      server: "memory",
      tool: "FILESYSTEM__READ_FILE",
    });
  });

  test.each(["read_file", "__read_file", "filesystem__"])("%s without a server cannot be told: it throws", (name) => {
    expect(() => toolTarget(name, {})).toThrow(InvalidInputError);
  });
});
