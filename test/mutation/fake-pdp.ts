import { type CheckResourcesRequest, type CheckResourcesResponse, Effect } from "@cerbos/core";
import type { PdpClient } from "../../src/index.ts";

/** What one hop's fake answer may change from a plain ALLOW about the very resource asked. */
export interface FakeResult {
  effect?: Effect;
  outputs?: unknown;
  metadata?: unknown;
  resource?: { kind: string; id: string };
  /** The whole response instead, as the client hands it over. */
  response?: unknown;
}

/**
 * A pure-logic PDP: answers every `checkResources` as `answer` says (ALLOW about the asked resource by default), and
 * keeps the requests and the signals it was handed. For the logic around the PDP only: decisions live in policies/.
 */
export function fakePdp(answer: (request: CheckResourcesRequest) => FakeResult | Promise<FakeResult> = () => ({})): {
  client: PdpClient;
  requests: CheckResourcesRequest[];
  signals: (AbortSignal | undefined)[];
} {
  const requests: CheckResourcesRequest[] = [];
  const signals: (AbortSignal | undefined)[] = [];
  const client: PdpClient = {
    async checkResources(request, options) {
      requests.push(request);
      signals.push(options?.signal);
      const entry = request.resources[0];
      const action = entry?.actions[0] ?? "";
      const result = await answer(request);
      if ("response" in result) return result.response as CheckResourcesResponse;
      return {
        cerbosCallId: `call-${requests.length}`,
        requestId: request.requestId,
        results: [
          {
            resource: result.resource ?? { kind: entry?.resource.kind, id: entry?.resource.id },
            actions: { [action]: result.effect ?? Effect.ALLOW },
            validationErrors: [],
            metadata:
              "metadata" in result
                ? result.metadata
                : { actions: { [action]: { matchedPolicy: "resource.fake.vdefault", matchedScope: "" } } },
            outputs: "outputs" in result ? result.outputs : [],
          },
        ],
      } as unknown as CheckResourcesResponse;
    },
    planResources() {
      throw new Error("the fake PDP plans nothing");
    },
  };
  return { client, requests, signals };
}

/**
 * A pure-logic PDP for the reason texts only (no repo policy gives an approval without a reason, or two): allows every
 * check, and asks for approval on tool calls, with `reason(principalId)` as each hop's reason.
 */
export function approvalAskingPdp(reason: (principalId: string) => string | undefined): PdpClient {
  return {
    async checkResources(request) {
      const entry = request.resources[0];
      const action = entry?.actions[0] ?? "";
      const said = reason(request.principal.id);
      const asks = entry?.resource.kind.startsWith("mcp::") === true;
      return {
        cerbosCallId: "fake",
        requestId: request.requestId,
        results: [
          {
            resource: { kind: entry?.resource.kind, id: entry?.resource.id },
            actions: { [action]: Effect.ALLOW },
            validationErrors: [],
            metadata: { actions: { [action]: { matchedPolicy: "resource.fake.vdefault", matchedScope: "" } } },
            outputs: asks
              ? [
                  {
                    action,
                    source: "fake",
                    value: { approval: "required", ...(said === undefined ? {} : { reason: said }) },
                  },
                ]
              : [],
          },
        ],
      } as unknown as CheckResourcesResponse;
    },
    planResources() {
      throw new Error("not used");
    },
  };
}
