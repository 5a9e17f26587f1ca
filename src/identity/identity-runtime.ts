import { createHash } from "node:crypto";
import type { Value } from "@cerbos/core";
import { type Actor, type ActorInput, invisibleCharacter, toActor } from "../actor.ts";
import { toAttributeRecord } from "../attribute-value.ts";
import type { ToolCallCheck, ValidatedToolCall } from "../cerbos-request.ts";
import { DeadlineExceeded, withDeadline } from "../deadline.ts";
import { IdentityError, type IdentityKind, InvalidInputError } from "../errors.ts";
import { cachedResolver, isCachedResolver } from "./cached-resolver.ts";
import type { IdentityResolvers, ResolverContext } from "./identity-resolvers.ts";

/** A caller's user or agent, each field read exactly once (a getter gets no second chance to answer differently). */
export interface ActorFields {
  readonly id: unknown;
  readonly roles: unknown;
  readonly attr: unknown;
  readonly policyVersion: unknown;
  readonly policyScope: unknown;
  /** Only an agent's: the scope it asks for. */
  readonly scope: unknown;
}

/** @internal What a guard's delegations use to complete identities; made once per guard by {@link identityRuntime}. */
export interface IdentityRuntime {
  /**
   * The actor a caller named: completed by the resolver for `kind` when the guard has one (its answer alone gives the
   * roles and attributes), else validated as the caller gave it.
   */
  complete(
    kind: "user" | "agent",
    fields: ActorFields | undefined,
    path: string,
    signal?: AbortSignal | undefined,
  ): Promise<Actor>;
  /** Whether the guard has a resolver for `kind`. */
  resolves(kind: IdentityKind): boolean;
  /** The attributes of what `call` touches, for `R.attr.resource`; `undefined` when the guard has no such resolver. */
  resource(call: ValidatedToolCall, signal?: AbortSignal | undefined): Promise<Record<string, Value>> | undefined;
}

type Lookup<K> = (input: K, signal: AbortSignal | undefined) => Promise<unknown>;

/** Reads a caller's user or agent reference (an id, or an object) once; `undefined` when it is neither. */
export function actorFields(reference: unknown): ActorFields | undefined {
  if (typeof reference === "string") {
    return {
      id: reference,
      roles: undefined,
      attr: undefined,
      policyVersion: undefined,
      policyScope: undefined,
      scope: undefined,
    };
  }
  if (typeof reference !== "object" || reference === null) return undefined;
  const { id, roles, attr, policyVersion, policyScope, scope } = reference as Record<string, unknown>;
  return { id, roles, attr, policyVersion, policyScope, scope };
}

/**
 * Prepares a guard's resolvers: each behind its cache (unless turned off, or already a {@link cachedResolver}) and
 * under the look-up deadline, and with every failure turned into an {@link IdentityError}.
 */
export function identityRuntime(resolvers: IdentityResolvers | undefined, defaultTimeoutMs: number): IdentityRuntime {
  if (resolvers !== undefined && (typeof resolvers !== "object" || resolvers === null)) {
    throw new InvalidInputError("options.identities", "must be an object of resolvers");
  }
  const { user, agent, resource, timeoutMs = defaultTimeoutMs, cache = {} } = resolvers ?? {};
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidInputError("options.identities.timeoutMs", "must be a positive number of milliseconds");
  }
  const prepare = <K>(name: IdentityKind, resolve: unknown, key?: (input: K) => string): Lookup<K> | undefined => {
    if (resolve === undefined) return undefined;
    if (typeof resolve !== "function") throw new InvalidInputError(`options.identities.${name}`, "must be a function");
    const inner = (
      cache === false || isCachedResolver(resolve)
        ? resolve
        : cachedResolver(resolve as (input: K, context: ResolverContext) => unknown, { ...cache, timeoutMs, key })
    ) as (input: K, context: ResolverContext) => unknown;
    // The guard's own deadline holds with or without a cache, and whatever the resolver does with its signal.
    return (input, signal) => withDeadline(timeoutMs, signal, async (deadline) => inner(input, { signal: deadline }));
  };
  const lookups = {
    user: prepare<string>("user", user),
    agent: prepare<string>("agent", agent),
    resource: prepare<ValidatedToolCall>("resource", resource, resourceKey),
  };

  return Object.freeze({
    resolves: (kind: IdentityKind) => lookups[kind] !== undefined,

    async complete(
      kind: "user" | "agent",
      fields: ActorFields | undefined,
      path: string,
      signal?: AbortSignal | undefined,
    ) {
      const lookup = lookups[kind];
      if (fields === undefined) {
        throw new InvalidInputError(path, lookup === undefined ? "must be an object" : "must be an id or an object");
      }
      if (lookup === undefined) {
        if (typeof fields.id === "string" && fields.roles === undefined) {
          throw new InvalidInputError(
            `${path}.roles`,
            `must be given: this guard has no ${kind} resolver to look "${fields.id}" up (createGuard({ identities: { ${kind} } }))`,
          );
        }
        const { id, roles, attr, policyVersion, policyScope } = fields;
        return toActor({ id, roles, attr, policyVersion, policyScope } as ActorInput, path);
      }
      const id = toId(fields.id, `${path}.id`);
      const profile = await ask(lookup, id, signal, { kind, id });
      if (profile === undefined || profile === null) {
        throw new IdentityError("identity_unknown", `the ${kind} resolver does not know "${id}"`, { kind, id });
      }
      try {
        // The resolver says what the principal is, its Cerbos policy version and scope included.
        const { roles, attr, policyVersion, policyScope } = profile as Record<string, unknown>;
        return toActor({ id, roles, attr, policyVersion, policyScope } as ActorInput, path);
      } catch (error) {
        throw new IdentityError(
          "identity_invalid",
          `the ${kind} resolver's profile of "${id}" is not valid: ${(error as Error).message}`,
          { kind, id },
          { cause: error },
        );
      }
    },

    resource(call: ValidatedToolCall, signal?: AbortSignal) {
      const lookup = lookups.resource;
      if (lookup === undefined) return undefined;
      const facts = { kind: "resource" as const, id: `${call.server}/${call.tool}` };
      return ask(lookup, call, signal, facts).then((attributes) => {
        try {
          return toAttributeRecord(attributes, "resource");
        } catch (error) {
          throw new IdentityError(
            "identity_invalid",
            `the resource resolver's attributes for ${facts.id} are not valid: ${(error as Error).message}`,
            facts,
            { cause: error },
          );
        }
      });
    },
  });
}

/** Runs a look-up, turning whatever goes wrong into `identity_unavailable` (an IdentityError it threw stays itself). */
async function ask<K>(
  lookup: Lookup<K>,
  input: K,
  signal: AbortSignal | undefined,
  facts: { kind: IdentityKind; id: string },
): Promise<unknown> {
  try {
    return await lookup(input, signal);
  } catch (error) {
    if (IdentityError.isInstance(error)) throw error;
    const about = facts.kind === "resource" ? `for ${facts.id}` : `for "${facts.id}"`;
    // What the resolver threw stays in `cause`: it may name internal hosts, and a refusal's text reaches the model.
    const what =
      error instanceof DeadlineExceeded
        ? `did not answer within ${error.timeoutMs} ms ${about}`
        : signal?.aborted === true
          ? `look-up ${about} was aborted`
          : `failed ${about}`;
    throw new IdentityError("identity_unavailable", `the ${facts.kind} resolver ${what}`, facts, { cause: error });
  }
}

/** An id that may be handed to a resolver (which may put it in a URL): the rules of `toActor`, applied first. */
function toId(value: unknown, path: string): string {
  if (typeof value !== "string" || value.trim() === "") throw new InvalidInputError(path, "must be a non-empty string");
  if (invisibleCharacter.test(value)) {
    throw new InvalidInputError(path, "must not contain control or invisible (format) characters");
  }
  if (value.trim() !== value) throw new InvalidInputError(path, "must not start or end with white space");
  return value.normalize("NFC");
}

/** Calls that touch the same thing share an answer; the framework's `toolCallId` differs on every call. */
function resourceKey(call: ValidatedToolCall): string {
  const { server, tool, arguments: args, annotations } = call;
  return createHash("sha256")
    .update(JSON.stringify([server, tool, args, annotations]))
    .digest("base64url");
}

/**
 * A tool call's check with the resource resolver's answer under `R.attr.resource`: its own key, so that nothing a
 * resolver says can stand in for the call's `server`, `tool`, `arguments` or `annotations`.
 */
export function withResourceAttributes(check: ToolCallCheck, attributes: Record<string, Value>): ToolCallCheck {
  return { ...check, resource: { ...check.resource, attr: { ...check.resource.attr, resource: attributes } } };
}
