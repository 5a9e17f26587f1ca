import type { Principal, Resource, Value } from "@cerbos/core";
import { type Actor, deepFreeze, invisibleCharacter } from "./actor.ts";
import { toAttributeRecord } from "./attribute-value.ts";
import { canonicalJson } from "./canonical-json.ts";
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

// Snapshots made by validateToolCall; anything else is validated (and so copied) again before use.
const snapshots = new WeakSet<object>();

/**
 * Checks a caller's tool call and takes its snapshot: a frozen copy, read exactly once, of the names, arguments and
 * annotations (see `toAttributeValue`). The PDP is asked about the snapshot and adapters send or execute the
 * snapshot, so a caller that changes its object afterwards (or hands over getters, `toJSON`s or proxies) changes
 * nothing that runs. Bad input throws {@link InvalidInputError} before anything is sent.
 */
export function validateToolCall(call: ToolCall | ValidatedToolCall): ValidatedToolCall {
  if (isToolCallSnapshot(call)) return call;
  if (typeof call !== "object" || call === null) throw new InvalidInputError("call", "must be an object");
  // Each field is read once: a getter gets no second chance to answer differently.
  const { server, tool, arguments: args, annotations, toolCallId } = call;
  checkName(server, "call.server");
  if (server.includes("/")) throw new InvalidInputError("call.server", "must not contain '/'");
  checkName(tool, "call.tool");
  if (toolCallId !== undefined && typeof toolCallId !== "string") {
    throw new InvalidInputError("call.toolCallId", "must be a string");
  }
  const snapshot: ValidatedToolCall = deepFreeze({
    server,
    tool,
    arguments: toAttributeRecord(args, "call.arguments"),
    annotations: toAttributeRecord(annotations, "call.annotations"),
    toolCallId,
  });
  snapshots.add(snapshot);
  return snapshot;
}

/**
 * The identity of a tool call as the PDP was asked about it: the canonical JSON of its server, tool, arguments and
 * annotations. Two snapshots have the same key exactly when they are the same call, so a decision made for one may
 * stand for the other.
 */
export function toolCallKey(call: Pick<ValidatedToolCall, "server" | "tool" | "arguments" | "annotations">): string {
  const key = canonicalJson([call.server, call.tool, call.arguments, call.annotations ?? null]);
  // A snapshot is JSON through and through; anything else must never share a key with it.
  if (key === undefined) throw new InvalidInputError("call", "is not a tool call snapshot");
  return key;
}

/** A decision's subject for a snapshot: the same frozen values, itself a snapshot adapters can send as it is. */
export function toolCallSubject(call: ValidatedToolCall): { readonly type: "tool" } & ValidatedToolCall {
  const subject = Object.freeze({ type: "tool" as const, ...call });
  snapshots.add(subject);
  return subject;
}

/** Whether `call` is a snapshot made by {@link validateToolCall}, which needs no second look. */
export function isToolCallSnapshot(call: unknown): call is ValidatedToolCall {
  return typeof call === "object" && call !== null && snapshots.has(call);
}

/**
 * Server and tool names become Cerbos kinds and actions: control and invisible (format) characters would let two
 * names that look the same be judged as different ones, so they are refused.
 */
function checkName(name: unknown, path: string): asserts name is string {
  if (typeof name !== "string" || name === "") throw new InvalidInputError(path, "must be a non-empty string");
  if (invisibleCharacter.test(name)) {
    throw new InvalidInputError(path, "must not contain control or invisible (format) characters");
  }
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
    ...(actor.policyVersion === undefined ? {} : { policyVersion: actor.policyVersion }),
    ...(actor.policyScope === undefined ? {} : { scope: actor.policyScope }),
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
