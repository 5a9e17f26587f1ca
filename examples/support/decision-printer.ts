import type { Context } from "@opentelemetry/api";
import type { ReadableSpan, Span, SpanProcessor } from "@opentelemetry/sdk-trace-base";
import {
  type Decision,
  formatDecisionTree,
  type HopDecision,
  HopEventAttributes,
  SpanAttributes,
  SpanNames,
} from "hopguard";
import { demoTracerName } from "./trace-file.ts";

/** What the demo knows about a call that its spans do not carry: the arguments, and why they matter. */
export interface CallNote {
  /** The call's arguments, as the model sent them (spans keep no arguments). */
  arguments: Record<string, unknown>;
  /** Why a denial hinged on them, in words. */
  why?: string;
}

/**
 * Prints every hopguard decision as it is recorded, straight from its OpenTelemetry span: what the demo shows is
 * exactly what an audit pipeline receives — plus the arguments the demo's scripted models sent, which spans leave out.
 */
export class DecisionPrinter implements SpanProcessor {
  readonly #lastByCall = new Map<string, string>();
  readonly #listed = new Set<string>();
  readonly #notes = new Map<string, CallNote>();

  /** Shows `note` under the decisions about tool call `callId`. */
  note(callId: string, note: CallNote): void {
    this.#notes.set(callId, note);
  }

  onStart(_span: Span, _context: Context): void {}

  onEnd(span: ReadableSpan): void {
    const a = span.attributes;
    const chain = ((a[SpanAttributes.chain] as string[] | undefined) ?? []).join(" → ");
    // Another service's guard (the MCP server's) decides on its own: say whose decision a line shows.
    const scope = span.instrumentationScope.name;
    const on = scope === demoTracerName ? "" : ` — on ${scope}`;
    if (span.name === SpanNames.listTools) {
      const line = `  · ${chain} could call ${a[SpanAttributes.toolsCallable]} of ${a[SpanAttributes.toolsOffered]} tools${on}`;
      // Each model call lists again; the same answer is shown once.
      if (!this.#listed.has(line)) console.log(line);
      this.#listed.add(line);
      return;
    }
    if (span.name === SpanNames.delegate) {
      const verdict = a[SpanAttributes.decision] === "allow" ? "allowed" : `REFUSED: ${a[SpanAttributes.reason]}`;
      console.log(`\n  ⇒ delegation ${chain} ⇒ ${a[SpanAttributes.delegateTo]}: ${verdict}${on}`);
      return;
    }
    if (span.name === SpanNames.approval) {
      const approver = a[SpanAttributes.approver] === undefined ? "" : ` by ${a[SpanAttributes.approver]}`;
      const call = String(a[SpanAttributes.toolCallId] ?? "");
      console.log(`    ✔ ${call}: ${a[SpanAttributes.approval]}${approver} — recorded on its hopguard.approval span`);
      return;
    }
    if (span.name !== SpanNames.authorize) return;
    const call = String(a[SpanAttributes.toolCallId] ?? span.spanContext().spanId);
    if (a[SpanAttributes.decision] === "error") {
      console.log(`\n  [${chain || "no chain"}] ${a[SpanAttributes.server]}/${a[SpanAttributes.toolName]}${on}`);
      console.log(`    ERROR ${a[SpanAttributes.errorType]}: ${span.status.message}`);
      return;
    }
    // A call waiting for a person is decided again when the run resumes: the same verdict is not shown twice.
    const verdict = [a[SpanAttributes.decision], a[SpanAttributes.deniedBy], a[SpanAttributes.hopEffects], on].join(
      "|",
    );
    if (this.#lastByCall.get(call) === verdict) return;
    this.#lastByCall.set(call, verdict);
    const tree = formatDecisionTree(decisionFrom(span));
    const approval =
      a[SpanAttributes.approval] === "required" ? "\n    … and a rule asks a person to approve it first" : "";
    const note = this.#notes.get(call);
    const args = note === undefined ? "" : `\n    arguments: ${JSON.stringify(note.arguments)}`;
    const why = note?.why === undefined || a[SpanAttributes.decision] === "allow" ? "" : `\n    why: ${note.why}`;
    console.log(`\n  [${chain}] call ${call}${on}\n${tree.replace(/^/gm, "    ")}${args}${why}${approval}`);
  }

  async forceFlush(): Promise<void> {}
  async shutdown(): Promise<void> {}
}

/** The decision a `hopguard.authorize` span records, rebuilt from its attributes and per-hop events. */
function decisionFrom(span: ReadableSpan): Decision {
  const a = span.attributes;
  const hops: HopDecision[] = span.events
    .filter((event) => event.name === "hopguard.hop")
    .map((event) => {
      const e = event.attributes ?? {};
      return {
        principalId: String(e[HopEventAttributes.principalId]),
        kind: e[HopEventAttributes.kind] === "user" ? "user" : "agent",
        depth: Number(e[HopEventAttributes.depth]),
        effect: e[HopEventAttributes.effect] === "EFFECT_ALLOW" ? "EFFECT_ALLOW" : "EFFECT_DENY",
        policy: String(e[HopEventAttributes.policy] ?? ""),
        cerbosCallId: String(e[HopEventAttributes.cerbosCallId] ?? ""),
        outputs: [],
        source: "pdp",
      } as HopDecision;
    });
  return {
    allowed: a[SpanAttributes.decision] === "allow",
    subject: {
      type: "tool",
      server: String(a[SpanAttributes.server]),
      tool: String(a[SpanAttributes.toolName]),
      toolCallId: a[SpanAttributes.toolCallId] as string | undefined,
      // Spans carry no arguments: what the tree shows is the verdict, not the payload.
      arguments: {},
      annotations: {},
    },
    chain: (a[SpanAttributes.chain] as string[] | undefined) ?? [],
    hops,
    deniedBy: a[SpanAttributes.deniedBy] as string | undefined,
    reason: String(a[SpanAttributes.reason] ?? ""),
    outputs: [],
    requestId: String(a[SpanAttributes.requestId] ?? ""),
  };
}
