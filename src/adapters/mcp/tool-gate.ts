import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type CallToolResult, ListToolsResultSchema, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { declinedApproval } from "../../approval.ts";
import type { ToolCall } from "../../cerbos-request.ts";
import { NoDelegationError, ToolCallDeniedError } from "../../errors.ts";
import { decideToolCall, refusalText, resolveDelegation, type ToolCallOutcome } from "../../tool-call-outcome.ts";
import type { GuardMcpClientOptions } from "./guard-mcp-client.ts";

/** The parameters of an MCP `tools/call` request, as far as the gate reads them. */
export interface ToolCallParams {
  name: string;
  arguments?: Record<string, unknown> | undefined;
}

/** Where every tool call and tool listing of a guarded client is authorized. */
export interface ToolGate {
  /** Resolves to `undefined` when the call may run, or to the refusal to return instead of running it. */
  admit(params: ToolCallParams, signal: AbortSignal | undefined): Promise<CallToolResult | undefined>;
  /** The same listing with only the tools the chain could call, in the server's order. */
  filter<R extends { tools: Tool[] }>(listing: R, signal: AbortSignal | undefined): Promise<R>;
}

/** Builds the gate for one guarded client; `client` is the unguarded one, asked for tool annotations. */
export function createToolGate(client: Client, options: GuardMcpClientOptions): ToolGate {
  const { server, delegation: explicit, onDenied = "refuse", approve, tracer } = options;
  const throws = onDenied === "throw";
  const annotations = new Map<string, Tool["annotations"]>();
  let refreshing: Promise<void> | undefined;

  const remember = (tools: readonly Tool[]): void => {
    for (const tool of tools) annotations.set(tool.name, tool.annotations);
  };

  // Policies may key on annotations (say, deny `destructiveHint` for agents), so calling a tool nobody listed yet
  // must not drop them: that could turn a deny into an allow. One listing at a time serves every waiting call.
  const annotationsOf = async (tool: string): Promise<Tool["annotations"]> => {
    if (!annotations.has(tool)) {
      refreshing ??= listEveryTool().finally(() => {
        refreshing = undefined;
      });
      await refreshing;
    }
    return annotations.get(tool);
  };

  const listEveryTool = async (): Promise<void> => {
    let cursor: string | undefined;
    do {
      // `request`, not `listTools`: the client's own listTools would replace its output-schema cache with one page.
      const page = await client.request(
        { method: "tools/list", params: cursor === undefined ? {} : { cursor } },
        ListToolsResultSchema,
      );
      remember(page.tools);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
  };

  const refusal = (call: ToolCall, reason: string): CallToolResult => ({
    isError: true,
    content: [{ type: "text", text: refusalText(call, reason) }],
  });

  const askForApproval = async (
    call: ToolCall,
    outcome: Extract<ToolCallOutcome, { type: "approval-required" }>,
  ): Promise<CallToolResult | undefined> => {
    const { decision, approval } = outcome;
    const why = approval.reasons.length === 0 ? "" : ` (${approval.reasons.join("; ")})`;
    const declined = (reason: string): CallToolResult => {
      // A declined approval is a deny the PDP could not know about; the decision names it the way scope refusals do.
      if (throws) {
        throw new ToolCallDeniedError(declinedApproval(decision, reason));
      }
      return refusal(call, reason);
    };
    if (approve === undefined) return declined(`a human's approval is required${why} and no approver is configured`);
    let approved: boolean;
    try {
      // Only a literal `true` runs the tool: a truthy "no" from a sloppy approver must not.
      approved = (await approve({ call, decision, approval })) === true;
    } catch (error) {
      if (throws) throw error;
      return refusal(call, `asking for approval failed: ${error instanceof Error ? error.message : error}`);
    }
    return approved ? undefined : declined(`a human's approval is required${why} and was not given`);
  };

  return {
    async admit(params, signal) {
      const delegation = resolveDelegation(explicit);
      const call: ToolCall = { server, tool: params?.name, arguments: params?.arguments };
      if (delegation !== undefined) {
        try {
          call.annotations = await annotationsOf(params?.name);
        } catch (error) {
          // Without the annotations the PDP cannot judge the call as its policies may expect: refuse it.
          if (throws) throw error;
          return refusal(call, `its annotations could not be read from the server: ${messageOf(error)}`);
        }
      }
      const outcome = await decideToolCall(delegation, call, { signal, tracer });
      switch (outcome.type) {
        case "allowed":
          return undefined;
        case "approval-required":
          return askForApproval(call, outcome);
        case "denied":
          if (throws) {
            throw outcome.decision === undefined ? outcome.error : new ToolCallDeniedError(outcome.decision);
          }
          return refusal(call, outcome.reason);
      }
    },

    async filter(listing, signal) {
      remember(listing.tools);
      try {
        const delegation = resolveDelegation(explicit);
        if (delegation === undefined) throw new NoDelegationError(`listing the tools of MCP server "${server}"`);
        const callable = await delegation.callableTools(
          listing.tools.map((definition) => ({
            server,
            tool: definition.name,
            annotations: definition.annotations,
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

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
