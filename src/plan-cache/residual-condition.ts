import type { PlanExpressionOperand, Value } from "@cerbos/core";

/** What a residual condition may read from the call being decided: the resource's id and attributes. */
export interface ResidualInput {
  readonly id: string;
  readonly attr: Readonly<Record<string, Value>>;
}

/**
 * A residual condition compiled to a closure: `true` or `false` when it decides the call exactly as the PDP would,
 * `undefined` when it cannot be sure — then the hop is asked live.
 */
export type CompiledResidual = (input: ResidualInput) => boolean | undefined;

/** The operators a residual may use; a plan with any other operator, or any other variable, is never compiled. */
export const residualOperators: readonly string[] = Object.freeze([
  "and",
  "or",
  "not",
  "eq",
  "ne",
  "lt",
  "le",
  "gt",
  "ge",
  "in",
  "startsWith",
  "endsWith",
  "contains",
  "size",
  "list",
  "index",
  "if",
  "all",
  "exists",
  "exists_one",
  "hasIntersection",
]);

// `unknown` stands for any value this evaluator cannot vouch for: a missing or null attribute (the plan dropped the
// `has()` guard that would have caught it), a type CEL would refuse, a string the wire would change. It is absorbed
// only where CEL itself absorbs an error (`false && x`, `true || x`, a false element in `all`, a true one in
// `exists`); anywhere else it makes the whole answer "ask the PDP".
const unknown: unique symbol = Symbol("unknown");
type Result = Value | typeof unknown;

interface Scope {
  readonly input: ResidualInput;
  /** Lambda bindings, innermost last. */
  readonly bound: Value[];
}

type Node = (scope: Scope) => Result;

const requestResource = "request.resource.";
const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Compiles a plan's residual condition once, for many calls.
 *
 * @remarks
 * Returns `undefined` when the condition uses an operator outside {@link residualOperators}, a variable other than the
 * resource's id or attributes (globals, auxData, a type name) or a malformed node: such a plan is never evaluated
 * in-process. Evaluation follows CEL as Cerbos runs it — heterogeneous equality (`1 == "1"` is false, `1 == 1.0` is
 * true), cross-type numeric ordering, sizes in code points, `&&`/`||` absorbing an error on the deciding side — and
 * answers `undefined` for anything else, including every missing or null attribute and every string that is not
 * well-formed UTF-16 (the wire would have replaced its lone surrogates).
 */
export function compileResidual(condition: PlanExpressionOperand): CompiledResidual | undefined {
  let root: Node;
  try {
    root = compile(condition, []);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  return (input) => {
    const result = root({ input, bound: [] });
    return typeof result === "boolean" ? result : undefined;
  };
}

class Unsupported extends Error {}

function compile(node: unknown, names: readonly string[]): Node {
  if (typeof node !== "object" || node === null) throw new Unsupported("not a plan node");
  if ("operator" in node) {
    const { operator, operands } = node as { operator: unknown; operands: unknown };
    if (typeof operator !== "string" || !Array.isArray(operands)) throw new Unsupported("malformed expression");
    return compileExpression(operator, operands, names);
  }
  if ("name" in node) {
    const { name } = node as { name: unknown };
    if (typeof name !== "string") throw new Unsupported("malformed variable");
    return compileVariable(name, names);
  }
  if ("value" in node) {
    const { value } = node as { value: Value };
    if (!isPlainValue(value)) throw new Unsupported("a constant this evaluator cannot read");
    return () => value;
  }
  throw new Unsupported("unknown node");
}

function compileVariable(name: string, names: readonly string[]): Node {
  const segments = name.split(".");
  const head = segments[0] as string;
  const slot = names.lastIndexOf(head);
  if (slot >= 0) {
    const path = segments.slice(1);
    if (!path.every((segment) => identifier.test(segment))) throw new Unsupported(`variable ${name}`);
    return (scope) => walk(scope.bound[slot] as Value, path);
  }
  if (name === "request.resource.id") return (scope) => checked(scope.input.id);
  if (name === "request.resource.attr") return (scope) => checked(scope.input.attr);
  if (name.startsWith(`${requestResource}attr.`)) {
    const path = segments.slice(3);
    if (!path.every((segment) => identifier.test(segment))) throw new Unsupported(`variable ${name}`);
    const [first, ...rest] = path as [string, ...string[]];
    return (scope) => {
      const attr = scope.input.attr;
      return Object.hasOwn(attr, first) ? walk(attr[first] as Value, rest) : unknown;
    };
  }
  throw new Unsupported(`variable ${name}`);
}

/** Follows field selections through maps; anything missing, null, not a map on the way, or unreadable is unknown. */
function walk(start: Value, path: readonly string[]): Result {
  let value: Value = start;
  for (const key of path) {
    if (!isMap(value) || !Object.hasOwn(value, key)) return unknown;
    value = value[key] as Value;
  }
  return checked(value);
}

/**
 * A value read from the call, as the PDP would see it: null anywhere (a dropped `has()` could hinge on it) or a string
 * that is not well-formed (the wire replaces lone surrogates) makes it unknown.
 */
function checked(value: Value | undefined): Result {
  return value !== undefined && readable(value, 0) ? value : unknown;
}

function readable(value: Value, depth: number): boolean {
  if (depth > 64) return false;
  switch (typeof value) {
    case "string":
      return wellFormed(value);
    case "number":
      return Number.isFinite(value);
    case "boolean":
      return true;
    default:
      if (value === null) return false;
      if (Array.isArray(value)) return value.every((item) => readable(item, depth + 1));
      // Keys too: the wire would turn a lone surrogate in one into U+FFFD, and two such keys into one.
      return Object.entries(value).every(
        ([key, item]) => wellFormed(key) && item !== undefined && readable(item, depth + 1),
      );
  }
}

function isConstant(node: unknown): boolean {
  return typeof node === "object" && node !== null && "value" in node && !("operator" in node) && !("name" in node);
}

/** A constant from the plan: plain JSON the PDP wrote. */
function isPlainValue(value: unknown): value is Value {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isPlainValue);
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.values(value as object).every(isPlainValue);
  }
  return false;
}

function compileExpression(operator: string, operands: readonly unknown[], names: readonly string[]): Node {
  switch (operator) {
    case "all":
    case "exists":
    case "exists_one":
      return compileComprehension(operator, operands, names);
    default:
      break;
  }
  const args = operands.map((operand) => compile(operand, names));
  const arity = (expected: number): void => {
    if (args.length !== expected) throw new Unsupported(`${operator} with ${args.length} operands`);
  };
  switch (operator) {
    case "and":
      if (args.length < 2) throw new Unsupported("and with fewer than two operands");
      return (scope) => logical(args, scope, false);
    case "or":
      if (args.length < 2) throw new Unsupported("or with fewer than two operands");
      return (scope) => logical(args, scope, true);
    case "not": {
      arity(1);
      const [operand] = args as [Node];
      return (scope) => {
        const value = operand(scope);
        return typeof value === "boolean" ? !value : unknown;
      };
    }
    case "eq":
    case "ne": {
      arity(2);
      const [left, right] = args as [Node, Node];
      const negate = operator === "ne";
      return (scope) => {
        const a = left(scope);
        if (a === unknown) return unknown;
        const b = right(scope);
        if (b === unknown) return unknown;
        const equal = celEquals(a, b);
        return equal === unknown ? unknown : equal !== negate;
      };
    }
    case "lt":
    case "le":
    case "gt":
    case "ge": {
      arity(2);
      const [left, right] = args as [Node, Node];
      const holds = orderings[operator] as (order: number) => boolean;
      return (scope) => {
        const order = compare(left(scope), right(scope));
        return order === unknown ? unknown : holds(order);
      };
    }
    case "in": {
      arity(2);
      const [element, container] = args as [Node, Node];
      return (scope) => membership(element(scope), container(scope));
    }
    case "startsWith":
    case "endsWith":
    case "contains": {
      arity(2);
      const [receiver, argument] = args as [Node, Node];
      const test = stringTests[operator] as (text: string, part: string) => boolean;
      return (scope) => {
        const text = receiver(scope);
        const part = argument(scope);
        return typeof text === "string" && typeof part === "string" && wellFormed(text) && wellFormed(part)
          ? test(text, part)
          : unknown;
      };
    }
    case "size": {
      arity(1);
      const [operand] = args as [Node];
      return (scope) => size(operand(scope));
    }
    case "list":
      return (scope) => {
        const items: Value[] = [];
        for (const arg of args) {
          const item = arg(scope);
          if (item === unknown) return unknown;
          items.push(item);
        }
        return items;
      };
    case "index": {
      arity(2);
      // Only a constant key: one read from the call would be a double in CEL, which lists do not take as an index.
      if (!isConstant(operands[1])) throw new Unsupported("index by a computed key");
      const [container, key] = args as [Node, Node];
      return (scope) => index(container(scope), key(scope));
    }
    case "if": {
      arity(3);
      const [test, then, otherwise] = args as [Node, Node, Node];
      return (scope) => {
        const branch = test(scope);
        if (branch === true) return then(scope);
        if (branch === false) return otherwise(scope);
        return unknown;
      };
    }
    case "hasIntersection": {
      arity(2);
      const [left, right] = args as [Node, Node];
      return (scope) => intersects(left(scope), right(scope));
    }
    default:
      throw new Unsupported(`operator ${operator}`);
  }
}

/** `all`, `exists`, `exists_one` over a list, with CEL's error absorption: `(list, (lambda body variable))`. */
function compileComprehension(operator: string, operands: readonly unknown[], names: readonly string[]): Node {
  const [range, lambda] = operands as [unknown, unknown];
  if (operands.length !== 2 || typeof lambda !== "object" || lambda === null || !("operator" in lambda)) {
    throw new Unsupported(`${operator} without a lambda`);
  }
  const { operator: lambdaOperator, operands: lambdaOperands } = lambda as { operator: unknown; operands: unknown };
  if (lambdaOperator !== "lambda" || !Array.isArray(lambdaOperands) || lambdaOperands.length !== 2) {
    throw new Unsupported(`${operator} without a lambda`);
  }
  const [body, variable] = lambdaOperands as [unknown, unknown];
  const name = (variable as { name?: unknown } | null)?.name;
  if (typeof name !== "string" || !identifier.test(name)) throw new Unsupported("lambda variable");
  const list = compile(range, names);
  const predicate = compile(body, [...names, name]);
  return (scope) => {
    const items = list(scope);
    if (!Array.isArray(items)) return unknown;
    let trues = 0;
    let undecided = false;
    for (const item of items) {
      scope.bound.push(item);
      let result: Result;
      try {
        result = predicate(scope);
      } finally {
        scope.bound.pop();
      }
      if (result === true) {
        if (operator === "exists") return true;
        trues++;
      } else if (result === false) {
        if (operator === "all") return false;
      } else {
        undecided = true;
      }
    }
    if (undecided) return unknown;
    if (operator === "all") return true;
    if (operator === "exists") return false;
    return trues === 1;
  };
}

/** `and` / `or` over any number of operands: the deciding value wins even over an error, as in CEL. */
function logical(args: readonly Node[], scope: Scope, decides: boolean): Result {
  let undecided = false;
  for (const arg of args) {
    const value = arg(scope);
    if (value === decides) return decides;
    if (value !== !decides) undecided = true;
  }
  return undecided ? unknown : !decides;
}

/** `String.prototype.isWellFormed` (Node 20+; not in the ES2023 lib this package compiles against). */
function wellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function isMap(value: unknown): value is { [key: string]: Value } {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** CEL's heterogeneous equality on JSON values: other types are unequal, numbers compare by value. */
function celEquals(a: Value, b: Value): boolean | typeof unknown {
  if (typeof a === "string" || typeof b === "string") {
    if (typeof a !== typeof b) return false;
    return wellFormed(a as string) && wellFormed(b as string) ? a === b : unknown;
  }
  if (typeof a === "number" || typeof b === "number") return a === b;
  if (typeof a === "boolean" || typeof b === "boolean") return a === b;
  if (a === null || b === null) return a === b;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b)) return false;
    if (a.length !== b.length) return false;
    let undecided = false;
    for (let i = 0; i < a.length; i++) {
      const equal = celEquals(a[i] as Value, b[i] as Value);
      if (equal === false) return false;
      if (equal === unknown) undecided = true;
    }
    return undecided ? unknown : true;
  }
  const aKeys = Object.keys(a);
  if (aKeys.length !== Object.keys(b).length) return false;
  let undecided = false;
  for (const key of aKeys) {
    if (!Object.hasOwn(b, key)) return false;
    const equal = celEquals(a[key] as Value, b[key] as Value);
    if (equal === false) return false;
    if (equal === unknown) undecided = true;
  }
  return undecided ? unknown : true;
}

const orderings: Record<string, (order: number) => boolean> = {
  lt: (order) => order < 0,
  le: (order) => order <= 0,
  gt: (order) => order > 0,
  ge: (order) => order >= 0,
};

const surrogate = /[\uD800-\uDFFF]/;

/** Numbers compare across int and double; strings only when UTF-16 order is code-point order (no surrogates). */
function compare(a: Result, b: Result): number | typeof unknown {
  if (typeof a === "number" && typeof b === "number") return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === "string" && typeof b === "string" && !surrogate.test(a) && !surrogate.test(b)) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  return unknown;
}

const stringTests: Record<string, (text: string, part: string) => boolean> = {
  startsWith: (text, part) => text.startsWith(part),
  endsWith: (text, part) => text.endsWith(part),
  contains: (text, part) => text.includes(part),
};

function membership(element: Result, container: Result): Result {
  if (element === unknown || container === unknown) return unknown;
  if (Array.isArray(container)) {
    let undecided = false;
    for (const item of container) {
      const equal = celEquals(element, item);
      if (equal === true) return true;
      if (equal === unknown) undecided = true;
    }
    return undecided ? unknown : false;
  }
  if (isMap(container) && typeof element === "string") return Object.hasOwn(container, element);
  return unknown;
}

function intersects(left: Result, right: Result): Result {
  if (!Array.isArray(left) || !Array.isArray(right)) return unknown;
  let undecided = false;
  for (const a of left) {
    for (const b of right) {
      const equal = celEquals(a, b);
      if (equal === true) return true;
      if (equal === unknown) undecided = true;
    }
  }
  return undecided ? unknown : false;
}

function size(value: Result): Result {
  if (typeof value === "string") {
    if (!wellFormed(value)) return unknown;
    let count = 0;
    for (const _ of value) count++;
    return count;
  }
  if (Array.isArray(value)) return value.length;
  if (isMap(value)) return Object.keys(value).length;
  return unknown;
}

function index(container: Result, key: Result): Result {
  if (Array.isArray(container)) {
    return typeof key === "number" && Number.isInteger(key) && key >= 0 && key < container.length
      ? checked(container[key])
      : unknown;
  }
  if (isMap(container) && typeof key === "string") {
    return Object.hasOwn(container, key) ? checked(container[key]) : unknown;
  }
  return unknown;
}
