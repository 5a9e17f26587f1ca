import type { PlanExpressionOperand, Value } from "@cerbos/core";
import { describe, expect, it } from "vitest";
import { compileResidual } from "../../src/plan-cache/index.ts";

// Pure logic: the compiler's refusals and the evaluator's "not sure" answers. Agreement with the PDP itself is
// proven against real PDPs in residual-operators.test.ts and differential.test.ts.
const variable = (name: string) => ({ name }) as unknown as PlanExpressionOperand;
const value = (constant: Value) => ({ value: constant }) as unknown as PlanExpressionOperand;
const call = (operator: string, ...operands: PlanExpressionOperand[]) =>
  ({ operator, operands }) as unknown as PlanExpressionOperand;
const path = variable("request.resource.attr.arguments.path");
const input = (args: Record<string, Value>) => ({ id: "read_file", attr: { arguments: args } });

describe("compiling a residual condition", () => {
  it("refuses any operator, function or variable outside the supported set", () => {
    for (const condition of [
      call("matches", path, value("^a")),
      call("lowerAscii", path),
      call("add", path, value("x")),
      call("eq", variable("globals.env"), value("prod")),
      call("eq", variable("request.auxData.jwt.sub"), value("x")),
      call("eq", call("type", path), variable("string")),
      call("eq", call("get-field", call("struct"), variable("sub")), value("x")),
      call("eq", variable("request.resource.attr.arguments.a-b"), value(1)),
      call("all", path, value(true)),
      call("index", path, path),
      call("not", path, path),
      call("and", path),
      { nonsense: true } as unknown as PlanExpressionOperand,
    ]) {
      expect(compileResidual(condition), JSON.stringify(condition)).toBeUndefined();
    }
  });

  it("is not sure — so the hop goes live — about anything missing, null, ill-formed or not a boolean", () => {
    const startsInWorkspace = compileResidual(call("startsWith", path, value("/workspace/alice/")));
    expect(startsInWorkspace?.(input({ path: "/workspace/alice/a" }))).toBe(true);
    expect(startsInWorkspace?.(input({ path: "/workspace/bob/a" }))).toBe(false);
    for (const args of [{}, { path: null }, { path: 1 }, { path: ["/workspace/alice/a"] }, { path: "\uDC00" }]) {
      expect(startsInWorkspace?.(input(args)), JSON.stringify(args)).toBeUndefined();
    }
    expect(compileResidual(path)?.(input({ path: "yes" }))).toBeUndefined();
    expect(compileResidual(variable("request.resource.attr.arguments.flag"))?.(input({ flag: true }))).toBe(true);
  });

  it("lets the deciding side of and/or win over an undecided one, as CEL does", () => {
    const undecided = call("startsWith", path, value("/"));
    const no = call("eq", value(1), value(2));
    const yes = call("eq", value(1), value(1));
    const args = input({});
    expect(compileResidual(call("and", undecided, no))?.(args)).toBe(false);
    expect(compileResidual(call("and", undecided, yes))?.(args)).toBeUndefined();
    expect(compileResidual(call("or", yes, undecided))?.(args)).toBe(true);
    expect(compileResidual(call("or", no, undecided))?.(args)).toBeUndefined();
    expect(compileResidual(call("not", undecided))?.(args)).toBeUndefined();
  });

  it("binds lambda variables innermost first, and exists_one counts exactly one", () => {
    const tags = variable("request.resource.attr.arguments.tags");
    const lambda = (body: PlanExpressionOperand, name: string) => call("lambda", body, variable(name));
    // tags.exists(t, tags.exists_one(t, t == "x")): the inner t shadows the outer one.
    const nested = compileResidual(
      call("exists", tags, lambda(call("exists_one", tags, lambda(call("eq", variable("t"), value("x")), "t")), "t")),
    );
    expect(nested?.({ id: "", attr: { arguments: { tags: ["x", "y"] } } })).toBe(true);
    expect(nested?.({ id: "", attr: { arguments: { tags: ["x", "x"] } } })).toBe(false);
    const field = compileResidual(call("all", tags, lambda(call("eq", variable("t.name"), value("a")), "t")));
    expect(field?.({ id: "", attr: { arguments: { tags: [{ name: "a" }, { name: "a" }] } } })).toBe(true);
    expect(field?.({ id: "", attr: { arguments: { tags: [{ name: "a" }, {}] } } })).toBeUndefined();
    expect(field?.({ id: "", attr: { arguments: { tags: [{ name: "b" }, {}] } } })).toBe(false);
  });

  it("reads the resource id and whole attribute maps from the call", () => {
    const byId = compileResidual(call("eq", variable("request.resource.id"), value("read_file")));
    expect(byId?.(input({}))).toBe(true);
    const hasKey = compileResidual(call("in", value("arguments"), variable("request.resource.attr")));
    expect(hasKey?.(input({}))).toBe(true);
    expect(hasKey?.({ id: "x", attr: { server: "s" } })).toBe(false);
  });
});
