import type { Decision } from "./decision.ts";

/**
 * Every stable error code hopguard throws. Match on `error.code`, never on the message.
 */
export type HopguardErrorCode =
  | "invalid_input"
  | "delegation_denied"
  | "scope_widened"
  | "delegation_cycle"
  | "depth_exceeded"
  | "delegation_expired"
  | "pdp_unavailable"
  | "tool_call_denied"
  | "no_delegation"
  | "authorization_failed"
  | "local_pdp_binary_not_found"
  | "local_pdp_policy_dir_not_found"
  | "local_pdp_policy_invalid"
  | "local_pdp_failed_to_start"
  | TokenErrorCode
  | IdentityErrorCode;

const marker = Symbol.for("hopguard.error");

/**
 * Base class of every error hopguard throws.
 *
 * @remarks
 * Use {@link HopguardError.isInstance} rather than `instanceof`: it still works when two copies of hopguard are
 * installed side by side.
 */
export class HopguardError extends Error {
  /** A stable, machine-readable code. */
  readonly code: HopguardErrorCode;

  constructor(code: HopguardErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    Object.defineProperty(this, marker, { value: true });
  }

  /** True for any hopguard error, from this copy of the package or another. */
  static isInstance(value: unknown): value is HopguardError {
    return typeof value === "object" && value !== null && marker in value;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** Input that hopguard will not send to the PDP (a bad id, a reserved attribute, a value JSON cannot carry). */
export class InvalidInputError extends HopguardError {
  /** Where in the input the problem is, e.g. `user.attr.chain` or `arguments.when`. */
  readonly path: string;

  constructor(path: string, problem: string) {
    super("invalid_input", `${path}: ${problem}`);
    this.path = path;
  }

  static override isInstance(value: unknown): value is InvalidInputError {
    return HopguardError.isInstance(value) && value.code === "invalid_input";
  }
}

/** Why {@link Delegation.delegate} refused to extend a chain. */
export type DelegationErrorCode =
  | "delegation_denied"
  | "scope_widened"
  | "delegation_cycle"
  | "depth_exceeded"
  | "delegation_expired";

const delegationErrorCodes: ReadonlySet<HopguardErrorCode> = new Set<DelegationErrorCode>([
  "delegation_denied",
  "scope_widened",
  "delegation_cycle",
  "depth_exceeded",
  "delegation_expired",
]);

/** A delegation that was refused: by a hop's policy, or because it would widen scope, loop, go too deep or has expired. */
export class DelegationError extends HopguardError {
  declare readonly code: DelegationErrorCode;
  /** The chain that tried to delegate, from the user down. */
  readonly chain: readonly string[];
  /** The agent it tried to delegate to. */
  readonly agentId: string;
  /** The PDP's per-hop decision, when a policy refused (`code === "delegation_denied"`). */
  readonly decision: Decision | undefined;

  constructor(
    code: DelegationErrorCode,
    message: string,
    facts: { chain: readonly string[]; agentId: string; decision?: Decision | undefined },
  ) {
    super(code, message);
    this.chain = facts.chain;
    this.agentId = facts.agentId;
    this.decision = facts.decision;
  }

  static override isInstance(value: unknown): value is DelegationError {
    return HopguardError.isInstance(value) && delegationErrorCodes.has(value.code);
  }
}

/** How the PDP failed to answer. */
export type PdpFailure = "unreachable" | "timeout" | "aborted" | "error";

/**
 * The PDP did not answer with a decision: unreachable, too slow, aborted, or erroring.
 *
 * @remarks
 * hopguard fails closed: this error is never turned into an allow. Adapters turn it into a refusal.
 */
export class PdpUnavailableError extends HopguardError {
  declare readonly code: "pdp_unavailable";
  /** What went wrong, for retries and dashboards. */
  readonly failure: PdpFailure;

  constructor(failure: PdpFailure, message: string, options?: ErrorOptions) {
    super("pdp_unavailable", message, options);
    this.failure = failure;
  }

  static override isInstance(value: unknown): value is PdpUnavailableError {
    return HopguardError.isInstance(value) && value.code === "pdp_unavailable";
  }
}

/** Thrown by adapters configured to throw, instead of answering the model, when a tool call is denied. */
export class ToolCallDeniedError extends HopguardError {
  declare readonly code: "tool_call_denied";
  /** The full decision, with the hop that denied. */
  readonly decision: Decision;

  constructor(decision: Decision) {
    super("tool_call_denied", decision.reason);
    this.decision = decision;
  }

  static override isInstance(value: unknown): value is ToolCallDeniedError {
    return HopguardError.isInstance(value) && value.code === "tool_call_denied";
  }
}

/**
 * A guarded tool was called with no delegation chain: none passed explicitly, none in the framework's context, and
 * none set with `runAs`. The call is refused, never run unguarded.
 */
export class NoDelegationError extends HopguardError {
  declare readonly code: "no_delegation";
  /** Where the adapter looked for a chain, in order, e.g. `options.delegation`, `runtimeContext.delegation`. */
  readonly lookedIn: readonly string[];

  /**
   * @param what - what was refused, e.g. `tool filesystem/read_file`
   * @param lookedIn - where a chain was looked for before the ambient `runAs` one; the message names each place
   */
  constructor(what: string, lookedIn: readonly string[] = []) {
    super(
      "no_delegation",
      lookedIn.length === 0
        ? `${what} has no delegation chain: pass one, put it in the framework's context, or call it inside guard.runAs()`
        : `${what} has no delegation chain: ${lookedIn.map((place) => `not in ${place}`).join(", ")} and no guard.runAs in effect`,
    );
    this.lookedIn = Object.freeze([...lookedIn]);
  }

  static override isInstance(value: unknown): value is NoDelegationError {
    return HopguardError.isInstance(value) && value.code === "no_delegation";
  }
}

/** Why the local PDP could not start. */
export type LocalPdpErrorCode =
  | "local_pdp_binary_not_found"
  | "local_pdp_policy_dir_not_found"
  | "local_pdp_policy_invalid"
  | "local_pdp_failed_to_start";

/** {@link startLocalPdp} failed; the message quotes what Cerbos itself said. */
export class LocalPdpError extends HopguardError {
  declare readonly code: LocalPdpErrorCode;
  /** The tail of the PDP's own output, when it printed any. */
  readonly output: string;

  constructor(code: LocalPdpErrorCode, message: string, output = "", options?: ErrorOptions) {
    super(code, message, options);
    this.output = output;
  }

  static override isInstance(value: unknown): value is LocalPdpError {
    return HopguardError.isInstance(value) && value.code.startsWith("local_pdp_");
  }
}

/** Why a delegation token was refused. */
export type TokenErrorCode =
  | "token_missing"
  | "token_malformed"
  | "token_signature_invalid"
  | "token_algorithm_not_allowed"
  | "token_key_unknown"
  | "token_expired"
  | "token_not_yet_valid"
  | "token_audience_mismatch"
  | "token_issuer_mismatch"
  | "token_revoked"
  | "token_revocation_unavailable"
  | "token_chain_invalid"
  | "token_user_mismatch";

const tokenErrorCodes: ReadonlySet<HopguardErrorCode> = new Set<TokenErrorCode>([
  "token_missing",
  "token_malformed",
  "token_signature_invalid",
  "token_algorithm_not_allowed",
  "token_key_unknown",
  "token_expired",
  "token_not_yet_valid",
  "token_audience_mismatch",
  "token_issuer_mismatch",
  "token_revoked",
  "token_revocation_unavailable",
  "token_chain_invalid",
  "token_user_mismatch",
]);

/**
 * A signed delegation token that hopguard will not act on: missing, malformed, badly signed, expired, for another
 * audience, revoked, or carrying a chain that is not well formed. Nothing runs on its behalf.
 */
export class TokenError extends HopguardError {
  declare readonly code: TokenErrorCode;

  constructor(code: TokenErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }

  static override isInstance(value: unknown): value is TokenError {
    return HopguardError.isInstance(value) && tokenErrorCodes.has(value.code);
  }
}

/** Why a partial identity could not be made whole (see `IdentityResolvers`). */
export type IdentityErrorCode = "identity_unknown" | "identity_unavailable" | "identity_invalid";

const identityErrorCodes: ReadonlySet<HopguardErrorCode> = new Set<IdentityErrorCode>([
  "identity_unknown",
  "identity_unavailable",
  "identity_invalid",
]);

/** What an identity resolver was asked about. */
export type IdentityKind = "user" | "agent" | "resource";

/**
 * A user, an agent or a tool call's resource that hopguard could not complete from its resolvers: an id the
 * directory does not know (`identity_unknown`), a resolver that failed or did not answer in time
 * (`identity_unavailable`), or an answer that is not a valid profile (`identity_invalid`). Nothing is sent to the PDP.
 *
 * @remarks
 * Fails closed like {@link PdpUnavailableError}: adapters turn it into a refusal. The message never quotes what the
 * resolver threw (it may name internal hosts or hold credentials, and a refusal's text reaches the model); that
 * stays in `cause`.
 */
export class IdentityError extends HopguardError {
  declare readonly code: IdentityErrorCode;
  /** Which resolver: the user's, an agent's, or the tool call's resource. */
  readonly kind: IdentityKind;
  /** The principal id asked about, or `server/tool` for a resource. */
  readonly id: string;

  constructor(
    code: IdentityErrorCode,
    message: string,
    facts: { kind: IdentityKind; id: string },
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.kind = facts.kind;
    this.id = facts.id;
  }

  static override isInstance(value: unknown): value is IdentityError {
    return HopguardError.isInstance(value) && identityErrorCodes.has(value.code);
  }
}
