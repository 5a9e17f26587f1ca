import type { Attributes, Tracer } from "@opentelemetry/api";
import {
  createGuard,
  type Delegation,
  decideToolCall,
  type GuardOptions,
  SpanNames,
  type ToolCall,
  type ToolCallOutcome,
} from "../../../src/index.ts";
import type { PdpClient } from "../../../src/pdp-client.ts";
import { type RecordingPdp, recordingPdp } from "../../support/recording-pdp.ts";
import { memoryTracing, onlySpan } from "../../support/tracing.ts";

/** A guard over the real PDP that records every request it sends and every span it writes. */
export function recordedGuard(client: PdpClient, options: Omit<Partial<GuardOptions>, "client" | "tracer"> = {}) {
  const pdp: RecordingPdp = recordingPdp(client);
  const tracing = memoryTracing();
  const guard = createGuard({ ...options, client: pdp, tracer: tracing.tracer });
  return {
    guard,
    pdp,
    tracing,
    /** Forgets what setting up the chains sent and recorded, so a test sees only the attack. */
    forget(): void {
      pdp.checks.length = 0;
      tracing.reset();
    },
    /** The attributes of the one span named `name` (the `hopguard.authorize` span by default). */
    span(name: string = SpanNames.authorize): Attributes {
      return onlySpan(tracing.spans(), name).attributes;
    },
  };
}

/** A tool whose one side effect is to record the arguments it ran with: it runs only when hopguard allowed it. */
export function recordedTool(): {
  ran: unknown[];
  call(
    delegation: Delegation | undefined,
    call: ToolCall,
    options?: { tracer?: Tracer | undefined },
  ): Promise<ToolCallOutcome>;
} {
  const ran: unknown[] = [];
  return {
    ran,
    async call(delegation, call, options = {}) {
      const outcome = await decideToolCall(delegation, call, options);
      // As the adapters do: run the snapshot that was authorized, never the caller's object.
      if (outcome.type === "allowed") ran.push(structuredClone(outcome.call.arguments));
      return outcome;
    },
  };
}

/** What `attempt` threw or rejected with; fails the test when it went through. */
export async function refusalOf(attempt: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof attempt === "function" ? attempt() : attempt);
  } catch (error) {
    return error;
  }
  throw new Error("expected a refusal, but the attempt went through");
}
