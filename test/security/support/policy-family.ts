import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";

/** The names a random policy family, and the chains and calls judged by it, are drawn from. */
export const familyNames = {
  /** Servers: resource kinds `mcp::p0` … `mcp::p3`. */
  servers: ["p0", "p1", "p2", "p3"],
  /** Tools (Cerbos actions); `t3` is named by no rule except a wildcard one. */
  tools: ["t0", "t1", "t2", "t3"],
  /** Roles beyond `user` and `agent` that principals may hold and rules may name. */
  extraRoles: ["r0", "r1", "r2"],
} as const;

// Conditions on the call's arguments and on the chain attributes hopguard sets on every hop. Some fail to evaluate
// for some inputs (a missing key, a string compared with a number): Cerbos then treats the condition as false.
const toolConditions = [
  "R.attr.arguments.x > 4",
  "has(R.attr.arguments.x) && R.attr.arguments.x < 3",
  'R.attr.arguments.mode == "safe"',
  "P.attr.depth >= 1",
  "P.attr.depth <= 1",
  'P.attr.kind == "user"',
  "size(P.attr.chain) < 3",
  '"r1" in P.attr.onBehalfOf.roles',
  '"r0" in P.roles',
  "P.attr.chain[0] == P.attr.onBehalfOf.id",
];
const delegationConditions = [
  "P.attr.depth < 2",
  '!("r1" in R.attr.roles)',
  '"r2" in R.attr.roles',
  "size(P.attr.chain) < 4",
  'P.attr.kind == "user"',
];

interface Rule {
  name: string;
  actions: string[];
  effect: "EFFECT_ALLOW" | "EFFECT_DENY";
  roles: string[];
  condition?: { match: { expr: string } };
}

const ruleRoles = ["user", "agent", ...familyNames.extraRoles];

function rules(actions: fc.Arbitrary<string[]>, conditions: readonly string[], count: { min: number; max: number }) {
  const rule = fc.record({
    actions,
    // Three allows to one deny, so that whole chains are allowed often enough to be interesting.
    effect: fc.constantFrom("EFFECT_ALLOW", "EFFECT_ALLOW", "EFFECT_ALLOW", "EFFECT_DENY" as const),
    roles: fc.oneof({ weight: 5, arbitrary: fc.subarray(ruleRoles, { minLength: 1 }) }, fc.constant<string[]>(["*"])),
    condition: fc.oneof(fc.constant(undefined), fc.constantFrom(...conditions)),
  });
  return fc.array(rule, { minLength: count.min, maxLength: count.max }).map((drawn) =>
    drawn.map(
      ({ condition, effect, ...rest }, index): Rule => ({
        name: `rule-${index}`,
        ...rest,
        effect: effect as Rule["effect"],
        ...(condition === undefined ? {} : { condition: { match: { expr: condition } } }),
      }),
    ),
  );
}

const toolActions: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 4, arbitrary: fc.subarray<string>([...familyNames.tools], { minLength: 1 }) },
  fc.constant<string[]>(["*"]),
);

const familyArbitrary = fc.record({
  tools: fc.tuple(...familyNames.servers.map(() => rules(toolActions, toolConditions, { min: 2, max: 5 }))),
  delegation: rules(fc.constant(["delegate"]), delegationConditions, { min: 1, max: 4 }),
});

/** Cerbos policy files (name → content) for a family drawn with a fixed seed: the same family on every run. */
export function policyFamily(seed: number): Record<string, unknown> {
  const [family] = fc.sample(familyArbitrary, { seed, numRuns: 1 });
  if (family === undefined) throw new Error("fast-check drew no policy family");
  const files: Record<string, unknown> = {};
  familyNames.servers.forEach((server, index) => {
    files[`mcp_${server}.yaml`] = {
      apiVersion: "api.cerbos.dev/v1",
      resourcePolicy: { resource: `mcp::${server}`, version: "default", rules: family.tools[index] },
    };
  });
  files["agent.yaml"] = {
    apiVersion: "api.cerbos.dev/v1",
    resourcePolicy: { resource: "agent", version: "default", rules: family.delegation },
  };
  return files;
}

/** Writes `files` (JSON is YAML) into a fresh temporary folder; `remove` deletes it. */
export async function writePolicyDir(
  files: Record<string, unknown>,
): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "hopguard-policy-family-"));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, name), `${JSON.stringify(content, null, 2)}\n`);
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
