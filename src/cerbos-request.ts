import type { Principal, Resource, Value } from "@cerbos/core";
import type { Actor } from "./actor.ts";
import { toAttributeRecord } from "./attribute-value.ts";
import type { HopKind } from "./decision.ts";
import { InvalidInputError } from "./errors.ts";
import { type EffectiveScope, scopeAttribute } from "./scope.ts";

/** One tool call to authorize. */
export interface ToolCall {
  /** The MCP server (or tool namespace) the tool belongs to, e.g. `"filesystem"`. No `/`. */
  server: string;
  /** The tool's name, e.g. `"read_file"`. */
  tool: string;
  /** The arguments the model passed. `undefined` properties are dropped, as JSON would. */
  arguments?: Record<string, unknown> | undefined;
  /** MCP tool annotations (`readOnlyHint`, `destructiveHint`, ...), for policies that key on them. */
  annotations?: Record<string, unknown> | undefined;
  /** The framework's id for this call, recorded on the span as `gen_ai.tool.call.id`. */
  toolCallId?: string | undefined;
}

/** The server and tool a framework's tool stands for: what the PDP is asked about. */
export type ToolTarget = Pick<ToolCall, "server" | "tool">;

/** The Cerbos resource and action a tool call is checked as. */
export interface ToolCallCheck {
  resource: Resource;
  action: string;
}

/** Maps a validated tool call to the Cerbos resource and action to check; see {@link defaultToolCallCheck}. */
export type ToolCallMapper = (call: ValidatedToolCall) => ToolCallCheck;

/** A tool call whose names were checked and whose arguments and annotations were made PDP-safe. */
export interface ValidatedToolCall {
  readonly server: string;
  readonly tool: string;
  readonly arguments: Record<string, Value>;
  readonly annotations: Record<string, Value>;
  readonly toolCallId: string | undefined;
}

/**
 * hopguard's Cerbos contract for tool calls: resource kind `mcp::<server>`, id and action `<tool>`, and attributes
 * `{ server, tool, arguments, annotations }`.
 */
export function defaultToolCallCheck(call: ValidatedToolCall): ToolCallCheck {
  return {
    resource: {
      kind: `mcp::${call.server}`,
      id: call.tool,
      attr: { server: call.server, tool: call.tool, arguments: call.arguments, annotations: call.annotations },
    },
    action: call.tool,
  };
}

/** Checks a caller's tool call and converts its values, so that bad input fails before anything runs. */
export function validateToolCall(call: ToolCall): ValidatedToolCall {
  if (typeof call !== "object" || call === null) throw new InvalidInputError("call", "must be an object");
  if (typeof call.server !== "string" || call.server === "" || call.server.includes("/")) {
    throw new InvalidInputError("call.server", "must be a non-empty string without '/'");
  }
  if (typeof call.tool !== "string" || call.tool === "") {
    throw new InvalidInputError("call.tool", "must be a non-empty string");
  }
  if (call.toolCallId !== undefined && typeof call.toolCallId !== "string") {
    throw new InvalidInputError("call.toolCallId", "must be a string");
  }
  return {
    server: call.server,
    tool: call.tool,
    arguments: toAttributeRecord(call.arguments, "call.arguments"),
    annotations: toAttributeRecord(call.annotations, "call.annotations"),
    toolCallId: call.toolCallId,
  };
}

/** The resource a delegation to `agent` is checked as: kind `agent`, id = the agent's id, action `delegate`. */
export function delegationCheck(agent: Actor, scope: EffectiveScope): ToolCallCheck {
  return {
    resource: {
      kind: "agent",
      id: agent.id,
      attr: { roles: [...agent.roles], attr: { ...agent.attr }, scope: scopeAttribute(scope) },
    },
    action: "delegate",
  };
}

/** One hop of a chain, with the principal it is checked as. */
export interface Hop {
  readonly actor: Actor;
  readonly kind: HopKind;
  readonly depth: number;
  readonly principal: Principal;
}

/**
 * Builds the Cerbos principal for a hop: its own id, roles and attributes, plus the chain attributes every policy
 * can rely on (`onBehalfOf`, `chain`, `depth`, `kind`, `scope`).
 */
export function hopPrincipal(options: {
  actor: Actor;
  user: Actor;
  kind: HopKind;
  chain: readonly string[];
  scope: EffectiveScope;
}): Principal {
  const { actor, user, kind, chain, scope } = options;
  return {
    id: actor.id,
    roles: [...actor.roles],
    attr: {
      ...actor.attr,
      onBehalfOf: { id: user.id, roles: [...user.roles], attr: { ...user.attr } },
      chain: [...chain],
      depth: chain.length - 1,
      kind,
      scope: scopeAttribute(scope),
    },
  };
}
