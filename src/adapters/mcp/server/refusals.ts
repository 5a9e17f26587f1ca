import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import type { Tracer } from "@opentelemetry/api";
import type { Decision } from "../../../decision.ts";
import { DelegationError, HopguardError, type HopguardErrorCode } from "../../../errors.ts";
import { recordSpan, SpanAttributes } from "../../../telemetry.ts";
import { refusalText } from "../../../tool-call-outcome.ts";

/** The `_meta` key of a refused `tools/call` result, holding the same {@link McpRefusal} a JSON-RPC error carries. */
export const refusalMetaKey = "hopguard.dev/refusal";

/**
 * Why a guarded server refused a request, for programs: in a refused `tools/call` result's
 * `_meta["hopguard.dev/refusal"]`, and in a JSON-RPC error's `data.hopguard`.
 */
export interface McpRefusal {
  /**
   * Who refused: the denying hop's principal id, `"scope"`, `"approval"` (a rule asked for a person's approval, and
   * there is no one to ask on a server) or, when no decision was made, the error code (`token_expired`,
   * `pdp_unavailable`, ...). Absent when a listing check hid what was asked for (completions).
   */
  readonly deniedBy?: string;
  /** One sentence a person (or a model) can read. */
  readonly reason: string;
  /** The hopguard error code when the request failed before a decision: every token failure, an unreachable PDP. */
  readonly code?: HopguardErrorCode;
}

/** What a request was refused about: the policy name of a server, tool, resource or prompt. */
export interface RefusalTarget {
  readonly server: string;
  readonly tool?: string | undefined;
}

/** The refusal a PDP's decision (a deny, or an approval no one gave) makes. */
export function decisionRefusal(decision: Decision): McpRefusal {
  return decision.deniedBy === undefined
    ? { reason: decision.reason }
    : { deniedBy: decision.deniedBy, reason: decision.reason };
}

/** The refusal a failure before any decision makes; anything not hopguard's is `authorization_failed`. */
export function errorRefusal(error: unknown): McpRefusal {
  const failure = asHopguardError(error);
  const deniedBy = DelegationError.isInstance(failure) ? (failure.decision?.deniedBy ?? failure.code) : failure.code;
  return { deniedBy, reason: failure.message, code: failure.code };
}

/** A refused `tools/call` as a result the model can read, shaped as the SDK's own tool errors. */
export function toolRefusalResult(target: RefusalTarget, refusal: McpRefusal): CallToolResult {
  return {
    content: [{ type: "text", text: refusalText({ server: target.server, tool: target.tool ?? "?" }, refusal.reason) }],
    isError: true,
    _meta: { [refusalMetaKey]: { ...refusal } },
  };
}

/** A refusal as a JSON-RPC error: `code` (InvalidParams, -32602, unless configured), `data.hopguard`. */
export function refusalError(code: number, method: string, target: RefusalTarget, refusal: McpRefusal): McpError {
  const what =
    method === "tools/call"
      ? ` ${target.server}/${target.tool ?? "?"}`
      : target.tool === undefined
        ? ""
        : ` of ${target.tool}`;
  return new McpError(code, `hopguard refused ${method}${what}: ${refusal.reason}`, { hopguard: { ...refusal } });
}

/**
 * Records a request refused before any decision (no chain, a bad token, a failing user mapping) as a span of its
 * own, so the trace says why nothing ran: ERROR, with the error and its `error.type`.
 */
export async function recordRefusal(
  tracer: Tracer,
  name: string,
  target: RefusalTarget,
  error: unknown,
): Promise<void> {
  await recordSpan({
    name,
    tracer,
    attributes: () => ({
      [SpanAttributes.server]: target.server,
      ...(target.tool === undefined ? {} : { [SpanAttributes.toolName]: target.tool }),
    }),
    fn: async () => {
      throw asHopguardError(error);
    },
  }).catch(() => undefined);
}

function asHopguardError(error: unknown): HopguardError {
  return HopguardError.isInstance(error)
    ? error
    : new HopguardError(
        "authorization_failed",
        `authorization failed: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      );
}
