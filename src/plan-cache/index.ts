// A per-hop plan cache: Cerbos query plans kept in memory, residual conditions evaluated in-process.
export {
  type CachedAnswer,
  type CachedDecisionRecord,
  createPlanCache,
  type PlanCache,
  type PlanCacheCheck,
  type PlanCacheClearOptions,
  type PlanCacheOptions,
  type PlanCacheRequest,
  type PlanCacheStats,
  type PlanSummary,
} from "./plan-cache.ts";
export { canonicalJson, planKey, plannedResource } from "./plan-key.ts";
export { allLive, type PairProfile, type PolicyProfile, policyProfile, readPolicyProfile } from "./policy-profile.ts";
export { PolicyYamlError, parsePolicyYaml, type YamlValue } from "./policy-yaml.ts";
export {
  type CompiledResidual,
  compileResidual,
  type ResidualInput,
  residualOperators,
} from "./residual-condition.ts";
