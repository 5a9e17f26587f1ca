import type { Principal, Resource, Value } from "@cerbos/core";
import type { Hop, ToolCallCheck } from "../cerbos-request.ts";
import type { DecisionOutput, HopDecision } from "../decision.ts";
import { PdpUnavailableError } from "../errors.ts";
import type { AuthZenBatchClient } from "../pdp-client.ts";
import type {
  AccessEvaluationAnswer,
  AccessEvaluationBatchRequest,
  AccessEvaluationBatchResponse,
  AuthZenSubject,
} from "./authzen-messages.ts";
import { isUnimplemented } from "./batch-support.ts";
import { toPdpUnavailable } from "./pdp-failure.ts";

// One round as AuthZEN batches. Cerbos groups a batch's evaluations by subject id, then by resource kind and id, and
// judges each group with its FIRST evaluation's subject and resource: two evaluations that share (subject id, kind,
// id) get one answer between them, whatever their attributes. So no batch here holds two such evaluations. Rather
// than renaming ids to make them unique — policies may key on R.id, which hopguard's contract makes the tool's name,
// and on P.id — a repeated pair goes to a second batch (a "lane"), sent at the same time. The hops of one chain have
// distinct ids, so a round is one batch; lanes only ever form for hops that repeat an id.

// The patterns Cerbos's CheckResourcesRequest enforces for policy versions and scopes; AuthZEN checks neither, so a
// value they refuse goes the checkResources way, where the PDP refuses it as before.
const policyVersionPattern = /^\w*$/;
const scopePattern = /^(^$|\.|[0-9a-zA-Z][\w-]*(\.\w[\w-]*)*)$/;

/** Thrown (and caught by `checkHops`) when the PDP answers that it has no AuthZEN. */
export class AuthZenUnimplemented extends Error {
  constructor(options: { cause: unknown }) {
    super("the PDP does not serve AuthZEN batches", options);
    this.name = "AuthZenUnimplemented";
  }
}

/**
 * Whether this round can be asked as a batch and mean exactly what one `checkResources` per hop means.
 *
 * @remarks
 * Cerbos reads roles, policy versions and scopes from properties named `cerbos.*`, so an attribute of that name would
 * be taken for one (or lost); with no roles it would judge the subject's type as its role; and it skips the
 * request validation `checkResources` has (unique roles, version and scope patterns). Any of these sends the round
 * the `checkResources` way.
 */
export function canBatch(hops: readonly Hop[], check: ToolCallCheck): boolean {
  const { resource, action } = check;
  if (action === "" || resource.kind === "" || resource.id === "") return false;
  if (!plainAttributes(resource.attr) || !versionAndScope(resource)) return false;
  return hops.every(({ principal }) => {
    const { roles } = principal;
    return (
      principal.id !== "" &&
      roles.length > 0 &&
      roles.every((role) => role !== "") &&
      new Set(roles).size === roles.length &&
      plainAttributes(principal.attr) &&
      versionAndScope(principal)
    );
  });
}

/**
 * Asks about every hop in AuthZEN batches (one, unless hops repeat an id) and returns their answers in chain order.
 *
 * @remarks
 * Runs inside the round's deadline (`signal`). A transport error, an answer of the wrong length, a missing or
 * malformed evaluation, or one about another resource throws {@link PdpUnavailableError}; `UNIMPLEMENTED` throws
 * {@link AuthZenUnimplemented}. The audit keeps its trail: each hop is its own entry in the PDP's decision log,
 * carrying hopguard's request id and the hop's principal. AuthZEN answers carry no Cerbos call id, so a batched hop's
 * `cerbosCallId` is `""`. Policies see the same principal and resource, except that Cerbos leaves `cerbos.roles`
 * among P.attr's keys (and `cerbos.policyVersion` / `cerbos.scope` where set); only a policy that lists those keys
 * could tell.
 */
export async function askInBatches(
  hops: readonly Hop[],
  check: ToolCallCheck,
  options: { batch: AuthZenBatchClient; requestId: string; timeoutMs: number },
  signal: AbortSignal,
): Promise<HopDecision[]> {
  const lanes = lanesOf(hops);
  const request = (lane: readonly number[]): AccessEvaluationBatchRequest => ({
    context: { "cerbos.includeMeta": true, "cerbos.requestId": options.requestId },
    resource: { type: check.resource.kind, id: check.resource.id, properties: resourceProperties(check.resource) },
    action: { name: check.action },
    evaluations: lane.map((index) => ({ subject: subjectOf(hops[index] as Hop) })),
  });
  const answers = await Promise.all(
    lanes.map((lane) =>
      options.batch.accessEvaluationBatch(request(lane), { signal }).catch((error: unknown) => {
        if (isUnimplemented(error)) throw new AuthZenUnimplemented({ cause: error });
        throw toPdpUnavailable(error, { at: "checking the chain in one AuthZEN batch", timeoutMs: options.timeoutMs });
      }),
    ),
  );
  const decisions: HopDecision[] = new Array(hops.length);
  for (const [laneIndex, lane] of lanes.entries()) {
    const evaluations = evaluationsOf(answers[laneIndex], lane.length);
    for (const [position, index] of lane.entries()) {
      const hop = hops[index] as Hop;
      decisions[index] = readAnswer(hop, check, evaluations[position]);
    }
  }
  return decisions;
}

/** Hop indexes in batches where no two hops share a principal id (the resource is the same for all). */
function lanesOf(hops: readonly Hop[]): number[][] {
  const lanes: number[][] = [];
  const seen = new Map<string, number>();
  for (const [index, hop] of hops.entries()) {
    const lane = seen.get(hop.principal.id) ?? 0;
    seen.set(hop.principal.id, lane + 1);
    if (lane === lanes.length) lanes.push([index]);
    else lanes[lane]?.push(index);
  }
  return lanes;
}

function subjectOf(hop: Hop): AuthZenSubject {
  return subjectFor(hop.principal, hop.kind);
}

/** A Cerbos principal as an AuthZEN subject: roles, policy version and scope as Cerbos reads them from properties. */
export function subjectFor(principal: Principal, type: string): AuthZenSubject {
  const properties: Record<string, Value> = { ...principal.attr, "cerbos.roles": [...principal.roles] };
  if (principal.policyVersion) properties["cerbos.policyVersion"] = principal.policyVersion;
  if (principal.scope) properties["cerbos.scope"] = principal.scope;
  return { type, id: principal.id, properties };
}

/** A Cerbos resource's attributes as AuthZEN properties, its policy version and scope among them. */
export function resourceProperties(resource: Resource): Record<string, Value> {
  if (!resource.policyVersion && !resource.scope) return resource.attr ?? {};
  const properties: Record<string, Value> = { ...resource.attr };
  if (resource.policyVersion) properties["cerbos.policyVersion"] = resource.policyVersion;
  if (resource.scope) properties["cerbos.scope"] = resource.scope;
  return properties;
}

function plainAttributes(attr: Record<string, Value> | undefined): boolean {
  if (attr === undefined) return true;
  for (const key of Object.keys(attr)) if (key.startsWith("cerbos.")) return false;
  return true;
}

function versionAndScope(entity: Pick<Principal, "policyVersion" | "scope">): boolean {
  return (
    (entity.policyVersion === undefined || policyVersionPattern.test(entity.policyVersion)) &&
    (entity.scope === undefined || scopePattern.test(entity.scope))
  );
}

function evaluationsOf(response: AccessEvaluationBatchResponse | undefined, expected: number): unknown[] {
  const evaluations: unknown = response?.evaluations;
  if (!Array.isArray(evaluations) || evaluations.length !== expected) {
    const got = Array.isArray(evaluations) ? `${evaluations.length} answers` : "no answers";
    throw new PdpUnavailableError("error", `PDP answered a batch of ${expected} evaluations with ${got}`);
  }
  return evaluations;
}

/** One hop's answer, read as strictly as `checkResources`'s: anything unexpected fails the round closed. */
function readAnswer(hop: Hop, check: ToolCallCheck, answer: unknown): HopDecision {
  const { kind, id } = check.resource;
  const who = `${hop.kind} "${hop.actor.id}"`;
  const malformed = (what: string) =>
    new PdpUnavailableError("error", `PDP answered ${who} with a malformed response: ${what}`);
  if (!isRecord(answer)) throw malformed("no evaluation");
  const { decision, context } = answer as AccessEvaluationAnswer;
  if (typeof decision !== "boolean") throw malformed("no decision");
  const response = isRecord(context) ? own(context, "cerbos.response") : undefined;
  const results = isRecord(response) ? own(response, "results") : undefined;
  if (!Array.isArray(results)) throw malformed("no cerbos.response");
  const matching = results.filter((result) => {
    const resource = isRecord(result) ? own(result, "resource") : undefined;
    return isRecord(resource) && own(resource, "kind") === kind && own(resource, "id") === id;
  }) as Record<string, unknown>[];
  // An answer about some other resource is no answer about this one.
  if (matching.length !== 1) {
    throw new PdpUnavailableError("error", `PDP answered about another resource than ${kind}/${id} for ${who}`);
  }
  const result = matching[0] as Record<string, unknown>;
  const actions = own(result, "actions");
  const effect = isRecord(actions) ? own(actions, check.action) : undefined;
  if (effect !== undefined && typeof effect !== "string") throw malformed("an effect that is not a string");
  // The decision and the effect say the same thing twice; when they differ, neither is believed.
  if ((effect === "EFFECT_ALLOW") !== decision) throw malformed(`decision ${decision} with effect ${String(effect)}`);
  const meta = own(result, "meta");
  const metaActions = isRecord(meta) ? own(meta, "actions") : undefined;
  const effectMeta = isRecord(metaActions) ? own(metaActions, check.action) : undefined;
  const policy = isRecord(effectMeta) ? own(effectMeta, "matchedPolicy") : undefined;
  if (policy !== undefined && typeof policy !== "string") throw malformed("a matched policy that is not a string");
  return {
    principalId: hop.actor.id,
    kind: hop.kind,
    depth: hop.depth,
    effect: decision ? "EFFECT_ALLOW" : "EFFECT_DENY",
    policy: policy ?? "",
    cerbosCallId: "",
    outputs: outputsOf(hop, check.action, own(result, "outputs"), malformed),
    source: "pdp",
  };
}

function outputsOf(
  hop: Hop,
  action: string,
  outputs: unknown,
  malformed: (what: string) => PdpUnavailableError,
): DecisionOutput[] {
  if (outputs === undefined) return [];
  if (!Array.isArray(outputs)) throw malformed("outputs that are not a list");
  const mine: DecisionOutput[] = [];
  for (const output of outputs) {
    if (!isRecord(output)) throw malformed("an output that is not an object");
    const source = own(output, "src");
    const outputAction = own(output, "action");
    if (typeof source !== "string" || typeof outputAction !== "string") throw malformed("an output without source");
    if (outputAction !== action) continue;
    mine.push({ principalId: hop.actor.id, source, value: own(output, "val") as Value | undefined });
  }
  return mine;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A property of the record itself: a tool named `constructor` must not read `Object.prototype.constructor`. */
function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}
