import type { CheckResourcesRequest, PlanResourcesRequest } from "@cerbos/core";
import type { PdpClient } from "../../src/index.ts";

/** A PDP client that forwards to a real one and keeps, as JSON, every request the PDP was sent. */
export interface RecordingPdp extends PdpClient {
  /** The `checkResources` requests, serialized when they were sent (what the PDP saw). */
  readonly checks: CheckResourcesRequest[];
  readonly plans: PlanResourcesRequest[];
  /** The `arguments` attribute of every tool-call check, in order. */
  argumentsSeen(): unknown[];
}

/** Wraps `client` so a test can compare what the PDP was asked about with what the server or tool received. */
export function recordingPdp(client: PdpClient): RecordingPdp {
  const checks: CheckResourcesRequest[] = [];
  const plans: PlanResourcesRequest[] = [];
  return {
    checks,
    plans,
    checkResources(request, options) {
      checks.push(JSON.parse(JSON.stringify(request)));
      return client.checkResources(request, options);
    },
    planResources(request, options) {
      plans.push(JSON.parse(JSON.stringify(request)));
      return client.planResources(request, options);
    },
    argumentsSeen() {
      return checks.flatMap((check) =>
        check.resources.flatMap((entry) =>
          entry.resource.kind.startsWith("mcp::") ? [entry.resource.attr?.arguments] : [],
        ),
      );
    },
  };
}

/**
 * A PDP client that forwards to `client`, but first runs `meddle` inside every check: an attacker acting while the
 * PDP is being asked, a race made certain.
 */
export function meddlingPdp(client: PdpClient, meddle: () => void): PdpClient {
  return {
    checkResources(request, options) {
      meddle();
      return client.checkResources(request, options);
    },
    planResources: (request, options) => client.planResources(request, options),
  };
}
