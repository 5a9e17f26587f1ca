import { describe, expect, test } from "vitest";
import {
  DelegationError,
  HopguardError,
  InvalidInputError,
  LocalPdpError,
  NoDelegationError,
  PdpUnavailableError,
  ToolCallDeniedError,
} from "../src/index.ts";

describe("errors", () => {
  test("carry a stable code, a name, and a cause", () => {
    const cause = new Error("socket hang up");
    const error = new PdpUnavailableError("unreachable", "PDP unreachable", { cause });
    expect(error.code).toBe("pdp_unavailable");
    expect(error.name).toBe("PdpUnavailableError");
    expect(error.cause).toBe(cause);
    expect(error).toBeInstanceOf(HopguardError);
  });

  test("isInstance recognises errors from another copy of hopguard, and nothing else", () => {
    // What a second install would create: same Symbol.for marker, different class identity.
    const foreign = Object.assign(new Error("denied"), { code: "delegation_cycle", agentId: "a", chain: [] });
    Object.defineProperty(foreign, Symbol.for("hopguard.error"), { value: true });
    expect(HopguardError.isInstance(foreign)).toBe(true);
    expect(DelegationError.isInstance(foreign)).toBe(true);
    expect(PdpUnavailableError.isInstance(foreign)).toBe(false);
    expect(HopguardError.isInstance(new Error("plain"))).toBe(false);
    expect(HopguardError.isInstance({ code: "delegation_cycle" })).toBe(false);
  });

  test("each subclass answers isInstance only for its own codes", () => {
    const errors = [
      new InvalidInputError("user.id", "must be a non-empty string"),
      new DelegationError("scope_widened", "wider", { chain: ["alice"], agentId: "x" }),
      new PdpUnavailableError("timeout", "slow"),
      new NoDelegationError("tool a/b"),
      new LocalPdpError("local_pdp_policy_invalid", "bad"),
    ];
    const checks = [InvalidInputError, DelegationError, PdpUnavailableError, NoDelegationError, LocalPdpError];
    const matrix = errors.map((error) => checks.map((check) => check.isInstance(error)));
    expect(matrix).toEqual(errors.map((_, row) => checks.map((_, column) => row === column)));
    expect(ToolCallDeniedError.isInstance(errors[0])).toBe(false);
  });
});
