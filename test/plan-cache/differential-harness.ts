// Cached/in-process answers against the live PDP, hop by hop: the chains, the random calls and the comparison that
// test/plan-cache/differential.test.ts (bounded, in npm test) and bench/plan-cache-figures.ts (the soundness run of
// 100,000+ hop comparisons) share.
import { Effect, type Principal } from "@cerbos/core";
import fc from "fast-check";
import {
  type ActorInput,
  createGuard,
  defaultToolCallCheck,
  type PdpClient,
  type Scope,
  validateToolCall,
} from "../../src/index.ts";
import type { CachedAnswer, PlanCache, PlanCacheCheck } from "../../src/plan-cache/index.ts";
import { recordingPdp } from "../support/recording-pdp.ts";
import { alice, bob, ivanTheIntern, planner, researcher, scribe } from "../support/users.ts";

/** One tool call as a model might make it: any JSON, right or wrong. */
export interface RandomCall {
  server: string;
  tool: string;
  arguments: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

type Link = ActorInput & { scope?: Scope };

/** The chains compared: every user, every agent, with and without narrowed scopes. */
const chains: readonly (readonly [ActorInput, ...Link[]])[] = [
  [alice],
  [alice, planner],
  [alice, planner, researcher],
  [alice, planner, scribe],
  [alice, scribe],
  [alice, { ...researcher, scope: { tools: ["filesystem/read_*", "memory/*"], expiresAt: "2100-01-01T00:00:00Z" } }],
  [bob, planner, scribe],
  [bob, researcher],
  [ivanTheIntern, planner, scribe],
  [ivanTheIntern, researcher],
];

/**
 * Every distinct hop principal of {@link chains}, exactly as hopguard sends it: each chain is built with a real guard
 * (every delegation authorized by `client`) and the principals are read from the checks it sends.
 */
export async function hopPrincipals(client: PdpClient): Promise<Principal[]> {
  const recording = recordingPdp(client);
  const guard = createGuard({ client: recording });
  const seen = new Map<string, Principal>();
  for (const [user, ...agents] of chains) {
    let delegation = guard.forUser(user);
    for (const agent of agents) delegation = await delegation.delegate(agent);
    recording.checks.length = 0;
    await delegation.authorize({ server: "memory", tool: "read_graph" });
    if (recording.checks.length !== agents.length + 1) {
      throw new Error(`expected one checkResources per hop, saw ${recording.checks.length}: did hop checks change?`);
    }
    for (const check of recording.checks) seen.set(JSON.stringify(check.principal), check.principal);
  }
  return [...seen.values()].map((principal) => deepFreeze(principal));
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

const workspaces = ["/workspace/alice", "/workspace/bob", "/workspace/ivan"];
const trickyPaths = [
  ...workspaces.flatMap((workspace) => [workspace, `${workspace}/`, `${workspace}/notes.md`, `${workspace}/a/b/c.txt`]),
  "/workspace/alice-secrets/plan.md",
  "/workspace/alicex",
  "/workspace/alice/../bob/notes.md",
  "/workspace/alice/..",
  "/workspace/alice/...",
  "/workspace/alice/a..b",
  "/workspace/alice/./x",
  "/workspace/alice//x",
  "..",
  "../workspace/alice/x",
  "/workspace/alice/\u0000",
  "/workspace/alice\u0000/x",
  "/workspace/alice/\uD800",
  "/workspace/alice/\uDC00x",
  "\uD800/workspace/alice/x",
  "/workspace/alice/\uFFFD",
  "/workspace/alice/\u{1F600}",
  `/workspace/alice/${"a".repeat(3000)}`,
  `/workspace/alice${"/".repeat(3000)}`,
  `/workspace/alice/${"..".repeat(1500)}`,
  "",
  "/",
  "/workspace",
  "/workspace/",
  "/WORKSPACE/alice/x",
  "/workspace/Alice/x",
  "/workspace/\uFF41lice/x",
  "/workspace/alice\\..\\x",
  "/workspace/alice/%2e%2e/x",
  " /workspace/alice/x",
  "/workspace/alice/x ",
  "/tmp/workspace/alice/x",
  "workspace/alice/x",
  "//workspace/alice/x",
  "/x/../workspace/alice/x",
];
const junk = ["", " ", "/tmp", "/tmp/", ".", "./", "x", "\u0000", "/workspace/bob"];
const prefixes = ["", "/", "/workspace/", ...workspaces, ...workspaces.map((workspace) => `${workspace}/`)];
const suffixes = [
  "..",
  "/..",
  "../",
  ".",
  "-secrets",
  "x",
  "/x",
  "\u0000",
  "\uD800",
  "\uDFFF",
  "\u{1F600}",
  "/./",
  "//",
];

const pathString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...trickyPaths) },
  {
    weight: 4,
    arbitrary: fc
      .tuple(fc.constantFrom(...prefixes), fc.array(fc.constantFrom(...suffixes), { maxLength: 3 }))
      .map(([prefix, parts]) => prefix + parts.join("")),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...prefixes), fc.string({ unit: "binary", maxLength: 12 }))
      .map(([prefix, rest]) => prefix + rest),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...junk), fc.constantFrom(...trickyPaths))
      .map(([before, path]) => before + path),
  },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 20 }) },
);

const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(pathString, { maxLength: 3 }),
  fc.dictionary(fc.constantFrom("path", "x", "__proto__"), pathString, { maxKeys: 2 }),
);

const pathValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: pathString },
  { weight: 1, arbitrary: wrongType },
);
const pathList: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.array(pathValue, { maxLength: 4 }) },
  { weight: 1, arbitrary: wrongType },
);
const extra = fc.dictionary(
  fc.constantFrom("extra", "head", "__proto__", "paths", "path"),
  fc.jsonValue({ maxDepth: 2 }),
  {
    maxKeys: 2,
  },
);

const singlePathTools = [
  "read_file",
  "read_text_file",
  "read_media_file",
  "list_directory",
  "directory_tree",
  "search_files",
  "get_file_info",
  "write_file",
  "edit_file",
  "create_directory",
];
const memoryTools = [
  "read_graph",
  "search_nodes",
  "open_nodes",
  "create_entities",
  "add_observations",
  "delete_entities",
];
const annotation = fc.oneof(fc.boolean(), fc.constant("true"), fc.constant(null), fc.constant(0));

/** A random call to the filesystem, memory or notes server, with right, wrong, missing and hostile arguments. */
export const randomCall: fc.Arbitrary<RandomCall> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.constantFrom(...singlePathTools), fc.record({ path: pathValue }, { requiredKeys: [] }), extra)
      .map(([tool, args, more]) => ({ server: "filesystem", tool, arguments: { ...more, ...args } })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ paths: pathList }, { requiredKeys: [] })
      .map((args) => ({ server: "filesystem", tool: "read_multiple_files", arguments: args })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ source: pathValue, destination: pathValue }, { requiredKeys: [] })
      .map((args) => ({ server: "filesystem", tool: "move_file", arguments: args })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom("list_allowed_directories", "unknown_tool")
      .map((tool) => ({ server: "filesystem", tool, arguments: {} })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.constantFrom(...memoryTools), extra)
      .map(([tool, args]) => ({ server: "memory", tool, arguments: args })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.constantFrom("add_note", "read_note", "delete_note"),
        extra,
        fc.record({ readOnlyHint: annotation, destructiveHint: annotation }, { requiredKeys: [] }),
      )
      .map(([tool, args, annotations]) => ({ server: "notes", tool, arguments: args, annotations })),
  },
);

/** A cached answer that disagrees with the live PDP. */
export interface Mismatch {
  readonly principal: string;
  readonly call: string;
  readonly cached: CachedAnswer;
  readonly live: string;
}

/** What one comparison round found. */
export interface Comparison {
  /** Hop decisions compared (principals × calls). */
  comparisons: number;
  /** Of those, answered from memory: by an unconditional plan, by a residual. */
  plan: number;
  residual: number;
  mismatches: Mismatch[];
}

const batchSize = 50;

/**
 * Decides every call for every principal twice — through `cache.lookup` and with a live `checkResources` (the
 * request hopguard sends for a hop, 50 resources a request) — and lists every hop where the cache answered
 * differently. Going live is never a mismatch.
 */
export async function compareWithLive(
  client: PdpClient,
  cache: PlanCache,
  principals: readonly Principal[],
  calls: readonly RandomCall[],
): Promise<Comparison> {
  const checks = calls.map((call, index): { label: string; check: PlanCacheCheck } => {
    const snapshot = validateToolCall(call);
    const check = defaultToolCallCheck(snapshot);
    // One request holds many resources; ids keep them apart (no policy here reads R.id).
    return {
      label: JSON.stringify({ tool: call.tool, arguments: snapshot.arguments, annotations: snapshot.annotations }),
      check: { resource: { ...check.resource, id: `${check.resource.id}#${index}` }, action: check.action },
    };
  });
  const result: Comparison = { comparisons: 0, plan: 0, residual: 0, mismatches: [] };
  await Promise.all(
    principals.map(async (principal) => {
      const cached = await Promise.all(checks.map(({ check }) => cache.lookup(principal, check)));
      for (let start = 0; start < checks.length; start += batchSize) {
        const batch = checks.slice(start, start + batchSize);
        const response = await client.checkResources({
          principal,
          resources: batch.map(({ check }) => ({ resource: check.resource, actions: [check.action] })),
        });
        batch.forEach(({ label, check }, offset) => {
          const answer = cached[start + offset];
          const liveResult = response.results[offset];
          if (liveResult?.resource.id !== check.resource.id) throw new Error("the PDP answered out of order");
          const live = liveResult.actions[check.action] === Effect.ALLOW ? "EFFECT_ALLOW" : "EFFECT_DENY";
          result.comparisons++;
          if (answer === undefined) return;
          result[answer.source]++;
          if (answer.effect !== live) {
            result.mismatches.push({
              principal: JSON.stringify(principal.attr?.chain),
              call: label,
              cached: answer,
              live,
            });
          }
        });
      }
    }),
  );
  return result;
}
