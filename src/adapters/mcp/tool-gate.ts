import type { CallToolRequest, CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Tracer } from "@opentelemetry/api";
import { type ValidatedToolCall, validateToolCall } from "../../cerbos-request.ts";
import { HopguardError, ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, resolveDelegation } from "../../tool-call-outcome.ts";
import { noChainError, refuseWithoutChain } from "../../warnings.ts";
import { admissionKey } from "./admissions.ts";
import { askApproval, type McpApprover } from "./ask-approval.ts";
import type { ClientGate } from "./client-gate.ts";
import { isJsonObject, type JsonObject, jsonSnapshot } from "./json-snapshot.ts";

/** What one guarded view decides with; see `GuardMcpClientOptions`. */
export interface ToolGateOptions {
  readonly server: string;
  readonly delegation?: unknown;
  readonly onDenied?: "refuse" | "throw" | undefined;
  readonly approve?: McpApprover | undefined;
  readonly tracer?: Tracer | undefined;
}

/** A tool call the gate ruled on: the refusal to return, or the params to send (carrying their ticket). */
export type Admission =
  | { readonly type: "refused"; readonly result: CallToolResult }
  | { readonly type: "admitted"; readonly params: CallToolRequest["params"]; readonly ticket: string };

/** Where every tool call and tool listing of one guarded view is authorized. */
export interface ToolGate {
  /**
   * Authorizes one `tools/call`. Its params are read once; an admitted call's params are the authorized snapshot
   * (never the caller's objects) with a single-use ticket the transport gate redeems.
   */
  admit(params: unknown, signal: AbortSignal | undefined): Promise<Admission>;
  /** Runs `send` with an admitted call's params and forgets its ticket once it settles; returns a refusal as is. */
  send<T>(admission: Admission, send: (params: CallToolRequest["params"]) => Promise<T>): Promise<T | CallToolResult>;
  /** Forgets an admitted call's ticket: its request settled (or was never made). */
  release(admission: Admission): void;
  /** The same listing with only the tools the chain could call, judged with the server's own annotations. */
  filter<R extends { tools: Tool[] }>(listing: R, signal: AbortSignal | undefined): Promise<R>;
}

/** Builds the gate of one guarded view over the client's {@link ClientGate}. */
export function createToolGate(gate: ClientGate, options: ToolGateOptions): ToolGate {
  const { server, delegation: explicit, onDenied = "refuse", approve, tracer } = options;
  const throws = onDenied === "throw";

  const refuse = (tool: unknown, reason: string, error: unknown): Admission => {
    if (throws) throw error;
    const text = refusalText({ server, tool: typeof tool === "string" ? tool : "?" }, reason);
    return { type: "refused", result: { isError: true, content: [{ type: "text", text }] } };
  };
  const unguarded = (tool: unknown): Admission | undefined => {
    if (gate.transport !== undefined) return undefined;
    const reason =
      "the client is not connected through hopguard (connect it through the guarded view, or guard it again once connected)";
    return refuse(
      tool,
      reason,
      new HopguardError("authorization_failed", `hopguard refused ${server}/${tool}: ${reason}`),
    );
  };
  const admitted = (call: ValidatedToolCall, extra: JsonObject): Admission => {
    const meta = isJsonObject(extra._meta) ? extra._meta : undefined;
    const ticket = gate.admissions.issue(call.tool, call.arguments, meta === undefined);
    const params = { ...extra, name: call.tool, arguments: call.arguments, _meta: { ...meta, [admissionKey]: ticket } };
    return { type: "admitted", params, ticket };
  };

  const release = (admission: Admission): void => {
    if (admission.type === "admitted") gate.admissions.release(admission.ticket);
  };

  return {
    async admit(params, signal) {
      // Read once: the name, the arguments, and (as JSON) the rest, such as `_meta` and `task`.
      const { name, arguments: args, ...rest } = (isObject(params) ? params : {}) as Record<string, unknown>;
      const notConnected = unguarded(name);
      if (notConnected !== undefined) return notConnected;
      let extra: JsonObject;
      try {
        extra = jsonSnapshot(rest, "params") as JsonObject;
      } catch (error) {
        return refuse(name, messageOf(error), error);
      }
      const delegation = resolveDelegation(explicit);
      let first: ValidatedToolCall | undefined;
      try {
        first = validateToolCall({ server, tool: name as string, arguments: args as Record<string, unknown> });
      } catch {
        // Bad input goes to decideToolCall as it came, to be refused there with its span.
      }
      let annotations: Tool["annotations"];
      if (delegation !== undefined && first !== undefined) {
        try {
          annotations = (await gate.annotations.current()).get(first.tool);
        } catch (error) {
          // Without the server's annotations the PDP cannot judge the call as its policies may expect.
          return refuse(name, `its annotations could not be read from the server: ${messageOf(error)}`, error);
        }
      }
      const call =
        first === undefined
          ? { server, tool: name as string, arguments: args as Record<string, unknown> }
          : { server, tool: first.tool, arguments: first.arguments, annotations };
      const outcome =
        delegation === undefined
          ? await refuseWithoutChain(call, chainPlaces, tracer)
          : await decideToolCall(delegation, call, { signal, tracer });
      switch (outcome.type) {
        case "allowed":
          return unguarded(name) ?? admitted(outcome.call, extra);
        case "approval-required": {
          const { decision, approval, call } = outcome;
          // An approval-required outcome always has a chain: only a chain's PDP answer can ask for approval.
          const verdict = await askApproval(approve, delegation as NonNullable<typeof delegation>, {
            call,
            decision,
            approval,
          });
          if (verdict.approved) return unguarded(name) ?? admitted(call, extra);
          const error = verdict.thrown === undefined ? new ToolCallDeniedError(verdict.decision) : verdict.thrown.error;
          return refuse(name, verdict.reason, error);
        }
        case "denied":
          return refuse(
            name,
            outcome.reason,
            outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision),
          );
      }
    },

    async send(admission, send) {
      if (admission.type === "refused") return admission.result;
      try {
        return await send(admission.params);
      } finally {
        release(admission);
      }
    },

    release,

    async filter(listing, signal) {
      try {
        const delegation = resolveDelegation(explicit);
        if (delegation === undefined) {
          throw noChainError(`listing the tools of MCP server "${server}"`, chainPlaces);
        }
        // The caller's listing says which tools to show; the gate's own listing says what they are.
        const annotations = await gate.annotations.current();
        const callable = await delegation.callableTools(
          listing.tools.map((definition) => ({
            server,
            tool: definition.name,
            annotations: annotations.get(definition.name),
            definition,
          })),
          { signal },
        );
        return { ...listing, tools: callable.map((tool) => tool.definition) };
      } catch (error) {
        if (throws) throw error;
        return { ...listing, tools: [] };
      }
    },
  };
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// Where the MCP client guard looks for a chain, for the refusal that finds none.
const chainPlaces: readonly string[] = Object.freeze(["options.delegation"]);
