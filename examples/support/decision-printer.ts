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

/**
 * Prints every hopguard decision as it is recorded, straight from its OpenTelemetry span: what the demo shows is
 * exactly what an audit pipeline receives.
 */
export class DecisionPrinter implements SpanProcessor {
  #lastByCall = new Map<string, string>();

  onStart(_span: Span, _context: Context): void {}

  onEnd(span: ReadableSpan): void {
    const a = span.attributes;
    const chain = ((a[SpanAttributes.chain] as string[] | undefined) ?? []).join(" → ");
    // Another service's guard (the MCP server's) decides on its own: say whose decision a line shows.
    const scope = span.instrumentationScope.name;
    const on = scope === demoTracerName ? "" : ` — on ${scope}`;
    if (span.name === SpanNames.listTools) {
      console.log(
        `  · ${chain} could call ${a[SpanAttributes.toolsCallable]} of ${a[SpanAttributes.toolsOffered]} tools${on}`,
      );
      return;
    }
    if (span.name === SpanNames.delegate) {
      const verdict = a[SpanAttributes.decision] === "allow" ? "allowed" : `REFUSED: ${a[SpanAttributes.reason]}`;
      console.log(`\n  ⇒ delegation ${chain} ⇒ ${a[SpanAttributes.delegateTo]}: ${verdict}${on}`);
      return;
    }
    if (span.name !== SpanNames.authorize) return;
    const call = String(a[SpanAttributes.toolCallId] ?? span.spanContext().spanId);
    if (a[SpanAttributes.decision] === "error") {
      console.log(`\n  [${chain || "no chain"}] ${a[SpanAttributes.server]}/${a[SpanAttributes.toolName]}${on}`);
      console.log(`    ERROR ${a[SpanAttributes.errorCode]}: ${span.status.message}`);
      return;
    }
    // The AI SDK asks once while it resolves approvals and again inside execute; a resumed approval asks again too.
    // Show a repeat of the same verdict for the same call as one line.
    const verdict = [a[SpanAttributes.decision], a[SpanAttributes.deniedBy], a[SpanAttributes.hopEffects]].join("|");
    if (this.#lastByCall.get(call) === verdict) {
      console.log(`    (${call}: asked again, e.g. at execution — ${a[SpanAttributes.decision]} again)`);
      return;
    }
    this.#lastByCall.set(call, verdict);
    const tree = formatDecisionTree(decisionFrom(span));
    const approval =
      a[SpanAttributes.approval] === "required" ? "\n    … and a rule asks a person to approve it first" : "";
    console.log(`\n  [${chain}] call ${call}${on}\n${tree.replace(/^/gm, "    ")}${approval}`);
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
      };
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
