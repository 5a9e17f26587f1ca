// Guard and delegation chains
export { createGuard, type Guard, type GuardOptions, type GuardPlanCache, type UserOptions } from "./guard.ts";
export { type AgentInput, type AgentReference, type CallOptions, Delegation } from "./delegation.ts";
export { type Actor, type ActorInput, reservedAttributes } from "./actor.ts";
export type { EffectiveScope, Scope } from "./scope.ts";
export { currentDelegation, runAs } from "./current-delegation.ts";

// Delegation tokens, across processes
export {
  createTokenSigner,
  type DelegationTokenClaims,
  delegationTokenType,
  type TokenAlgorithm,
  type TokenHop,
  type TokenScope,
  type TokenSigner,
  type TokenSignerOptions,
  type TokenSigningRequest,
} from "./delegation-token.ts";
export {
  createTokenVerifier,
  type TokenKeys,
  type TokenVerifier,
  type TokenVerifierOptions,
  type VerifiedDelegationToken,
} from "./token-verifier.ts";

// Identity enrichment: complete partial identities (ids only) from your directory before the PDP is asked
export type {
  ActorReference,
  IdentityResolvers,
  Profile,
  ProfileResolver,
  ResolverContext,
  ResourceResolver,
} from "./identity/identity-resolvers.ts";
export { type CachedResolver, type CacheOptions, cachedResolver } from "./identity/cached-resolver.ts";
export {
  type DirectoryData,
  type DirectoryResolverOptions,
  type DirectoryResolvers,
  directoryResolver,
} from "./identity/directory-resolver.ts";
export {
  type BearerAuthInfo,
  type ClaimsResolver,
  type ClaimsResolverOptions,
  claimsResolver,
} from "./identity/claims-resolver.ts";

// Decisions
export type { Decision, DecisionOutput, DecisionSubject, HopDecision, HopKind, HopSource } from "./decision.ts";
export {
  type CachedDecisionRecord,
  type PlanCacheClearOptions,
  type PlanCacheStats,
  type PolicyProfile,
  readPolicyProfile,
} from "./plan-cache/index.ts";
export type { PlanCacheSettings } from "./plan-cache/watched-plan-cache.ts";
export { formatDecisionTree } from "./decision-tree.ts";
export {
  type ApprovalAnswer,
  type ApprovalOutput,
  type ApprovalRequest,
  approvalRequest,
  declinedApproval,
} from "./approval.ts";
export type { ToolDescriptor } from "./tool-listing.ts";

// For adapters, ours and yours
export { decideToolCall, refusalText, resolveDelegation, type ToolCallOutcome } from "./tool-call-outcome.ts";

// The Cerbos contract
export {
  defaultToolCallCheck,
  type ToolCall,
  type ToolCallCheck,
  type ToolCallMapper,
  type ToolTarget,
  type ValidatedToolCall,
  validateToolCall,
} from "./cerbos-request.ts";
export type { PdpClient } from "./pdp-client.ts";

// The local PDP (`startLocalPdp`) is the subpath `hopguard/local-pdp`: it spawns processes and loads @cerbos/grpc.

// Errors
export {
  DelegationError,
  type DelegationErrorCode,
  HopguardError,
  type HopguardErrorCode,
  IdentityError,
  type IdentityErrorCode,
  type IdentityKind,
  InvalidInputError,
  LocalPdpError,
  type LocalPdpErrorCode,
  NoDelegationError,
  type PdpFailure,
  PdpUnavailableError,
  TokenError,
  type TokenErrorCode,
  ToolCallDeniedError,
} from "./errors.ts";

// Telemetry
export { HopEventAttributes, SpanAttributes, SpanNames } from "./telemetry.ts";

// Warnings: setup mistakes noticed while refusing (no chain anywhere, no policy for a kind)
export {
  type HopguardWarning,
  type HopguardWarningCode,
  setWarningHandler,
  type WarningHandler,
} from "./warnings.ts";
