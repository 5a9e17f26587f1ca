import type { Value } from "@cerbos/core";

// The OpenID AuthZEN access-evaluation batch, as Cerbos serves it (gRPC `authzen.authorization.v1.
// AuthorizationService/AccessEvaluationBatch`, HTTP `POST /access/v1/evaluations`), in its JSON form. Cerbos reads a
// subject's roles from the `cerbos.roles` property, a policy version and scope from `cerbos.policyVersion` and
// `cerbos.scope` on subjects and resources, and `cerbos.requestId`, `cerbos.includeMeta` and `cerbos.auxData` from the
// context; with `cerbos.includeMeta` each answer's context holds `cerbos.response`, the CheckResourcesResponse (as
// JSON) of the group of evaluations the PDP judged it with.

/** Who asks: `type` is only a role of last resort (Cerbos uses it when `cerbos.roles` is empty). */
export interface AuthZenSubject {
  type: string;
  id: string;
  properties?: Record<string, Value> | undefined;
}

/** What is asked about: `type` is the Cerbos resource kind. */
export interface AuthZenResource {
  type: string;
  id: string;
  properties?: Record<string, Value> | undefined;
}

export interface AuthZenAction {
  name: string;
}

/** One evaluation of a batch; what it leaves out is taken from the batch's defaults. */
export interface AuthZenEvaluation {
  subject?: AuthZenSubject | undefined;
  resource?: AuthZenResource | undefined;
  action?: AuthZenAction | undefined;
  context?: Record<string, Value> | undefined;
}

/** Many evaluations in one request, answered in order. */
export interface AccessEvaluationBatchRequest {
  subject?: AuthZenSubject | undefined;
  resource?: AuthZenResource | undefined;
  action?: AuthZenAction | undefined;
  /** Cerbos 0.51 refuses a batch without a context. */
  context: Record<string, Value>;
  evaluations: AuthZenEvaluation[];
}

/** One answer: `decision` true is an allow; `context` carries what the PDP adds (with Cerbos, `cerbos.response`). */
export interface AccessEvaluationAnswer {
  decision?: boolean | undefined;
  context?: Record<string, Value> | undefined;
}

/** The answers of a batch, one per evaluation, in the order asked. */
export interface AccessEvaluationBatchResponse {
  evaluations: AccessEvaluationAnswer[];
}
