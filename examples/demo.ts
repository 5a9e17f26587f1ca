// The main job: on a real Cerbos PDP started from npm, alice delegates to a planner agent, which delegates to a
// researcher agent. Every tool call is checked at every hop; each decision is printed as a per-hop tree and recorded
// as an OpenTelemetry span, written to an OTLP-JSON file at the end.
//   npm install && npm run demo
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGuard, type Delegation, DelegationError, formatDecisionTree, startLocalPdp } from "hopguard";
import { traceToFile } from "./demo/trace-file.ts";

const tracing = traceToFile();
const started = performance.now();
const pdp = await startLocalPdp();
console.log(`Cerbos PDP from npm healthy at ${pdp.grpcAddress} in ${(performance.now() - started).toFixed(0)} ms\n`);

try {
  const guard = createGuard({ client: pdp.client, tracer: tracing.tracer });
  const alice = guard.forUser({
    id: "alice",
    roles: ["user"],
    attr: { department: "engineering", workspace: "/workspace/alice", tenant: "acme" },
  });
  const planner = await alice.delegate({ id: "planner", roles: ["agent", "planner"] });
  const researcher = await planner.delegate({
    id: "researcher",
    roles: ["agent", "researcher"],
    scope: { tools: ["filesystem/read_*", "filesystem/list_directory", "memory/*"] },
  });

  section("Every hop decides: alice → planner → researcher");
  const calls = [
    { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } },
    { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/bob/salaries.csv" } },
    { server: "filesystem", tool: "write_file", arguments: { path: "/workspace/alice/plan.md", content: "…" } },
    { server: "filesystem", tool: "move_file", arguments: { source: "/workspace/alice/a", destination: "/tmp/a" } },
    { server: "memory", tool: "delete_entities", arguments: { entityNames: ["alice"] } },
  ];
  for (const actor of [alice, planner, researcher]) {
    for (const call of calls) await show(actor, call);
  }

  section("Delegation is checked too, and scope only narrows");
  await attempt("planner → another planner", () => planner.delegate({ id: "planner-2", roles: ["agent", "planner"] }));
  await attempt("researcher widening to filesystem/*", () =>
    researcher.delegate({ id: "helper", roles: ["agent"], scope: { tools: ["filesystem/*"] } }),
  );
  await attempt("researcher → planner (cycle)", () => researcher.delegate({ id: "planner", roles: ["agent"] }));

  const traceFile = join(tmpdir(), `hopguard-demo-${process.pid}.otlp.json`);
  tracing.write(traceFile);
  console.log(`\n${tracing.spanCount()} spans written as OTLP-JSON to ${traceFile}`);
} finally {
  await pdp.stop();
}

async function show(actor: Delegation, call: Parameters<Delegation["authorize"]>[0]): Promise<void> {
  const decision = await actor.authorize(call);
  console.log(`${actor.chain.join(" → ")}\n${indent(formatDecisionTree(decision))}\n`);
}

async function attempt(label: string, delegate: () => Promise<Delegation>): Promise<void> {
  try {
    const child = await delegate();
    console.log(`  ${label}: allowed (${child.chain.join(" → ")})`);
  } catch (error) {
    if (!DelegationError.isInstance(error)) throw error;
    console.log(`  ${label}: refused [${error.code}] ${error.message}`);
  }
}

function section(title: string): void {
  console.log(`\n=== ${title} ===\n`);
}

function indent(text: string): string {
  return text.replace(/^/gm, "  ");
}
