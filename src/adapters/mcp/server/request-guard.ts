import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import { context, type Tracer } from "@opentelemetry/api";
import { type ToolCall, validateToolCall } from "../../../cerbos-request.ts";
import { runAs } from "../../../current-delegation.ts";
import type { Decision } from "../../../decision.ts";
import type { Delegation } from "../../../delegation.ts";
import { HopguardError, InvalidInputError } from "../../../errors.ts";
import type { Guard } from "../../../guard.ts";
import { SpanNames } from "../../../telemetry.ts";
import { decideToolCall, type ToolCallOutcome } from "../../../tool-call-outcome.ts";
import { isJsonObject, type JsonObject, jsonSnapshot } from "../json-snapshot.ts";
import {
  decisionRefusal,
  errorRefusal,
  type McpRefusal,
  type RefusalTarget,
  recordRefusal,
  refusalError,
  toolRefusalResult,
} from "./refusals.ts";
import { type McpUserResolver, requestDelegation } from "./request-principal.ts";
import { canonicalUri, type RawHandler, type RawHandlers, resourceFacts, ServerCatalog } from "./server-catalog.ts";
import { promptCall, promptServer, resourceCall, resourceServer } from "./server-checks.ts";
import { callerTraceContext } from "./trace-context.ts";

/** How one guarded server decides; see `GuardMcpServerOptions`. */
export interface RequestGuardSettings {
  /** The server's policy name. */
  readonly server: string;
  /** The server's own guard, whose mapper knows resources and prompts (`serverChecks`). */
  readonly guard: Guard;
  readonly tracer: Tracer;
  readonly metaKey: string;
  readonly user: McpUserResolver | undefined;
  readonly onDenied: "result" | "error";
  readonly errorCode: number;
}

/** Protocol plumbing that acts for no one and reveals nothing: answered without a chain. */
const unauthenticated: ReadonlySet<string> = new Set(["initialize", "ping"]);

/** Listings, whose refusals are recorded as `hopguard.list_tools` spans. */
const listings: ReadonlySet<string> = new Set([
  "tools/list",
  "resources/list",
  "resources/templates/list",
  "prompts/list",
]);

/** Why a decision that asks for a person's approval is refused on a server: no person answers there. */
const noApprover = "a rule asks for a person's approval, and no one can give it on the server";

/**
 * Builds the guard for one request handler of one server: it takes the delegation token out of `params._meta`,
 * joins the caller's trace, finds the chain the request acts for and lets the handler see (and run) only what every
 * hop of that chain may.
 */
export function requestGuard(
  settings: RequestGuardSettings,
): (method: string, handler: RawHandler, raw: RawHandlers) => RawHandler {
  return (method, handler, raw) => async (received, extra) => {
    // Read once: what is decided on and what the handler gets are this copy, whatever happens to the original.
    const request = jsonSnapshot(received, "request") as JsonObject;
    const params = isJsonObject(request.params) ? request.params : undefined;
    const meta = params !== undefined && isJsonObject(params._meta) ? params._meta : undefined;
    const hasToken = meta !== undefined && Object.hasOwn(meta, settings.metaKey);
    // Handlers (and the tools behind them) never see the token: it is a bearer credential for its lifetime.
    let cleanRequest = request;
    let cleanMeta = meta;
    if (hasToken) {
      const { [settings.metaKey]: _token, ...rest } = meta;
      cleanMeta = rest;
      cleanRequest = { ...request, params: { ...params, _meta: rest } };
    }
    const cleanExtra = { ...extra, _meta: cleanMeta };
    const requestInfo = isJsonObject(extra.requestInfo) ? extra.requestInfo : undefined;
    const caller = callerTraceContext(meta, requestInfo?.headers);
    const exchange = new Exchange(settings, method, handler, raw, cleanRequest, cleanExtra);
    const run = () =>
      exchange.handle({
        hasToken,
        token: hasToken ? meta[settings.metaKey] : undefined,
        authInfo: isJsonObject(extra.authInfo) ? (extra.authInfo as unknown as AuthInfo) : undefined,
      });
    return caller === undefined ? run() : context.with(caller, run);
  };
}

/** One request, on its way through the guard to its handler. */
class Exchange {
  readonly #settings: RequestGuardSettings;
  readonly #method: string;
  readonly #handler: RawHandler;
  readonly #raw: RawHandlers;
  readonly #request: JsonObject;
  readonly #params: JsonObject;
  readonly #extra: JsonObject;
  readonly #signal: AbortSignal | undefined;

  constructor(
    settings: RequestGuardSettings,
    method: string,
    handler: RawHandler,
    raw: RawHandlers,
    request: JsonObject,
    extra: JsonObject,
  ) {
    this.#settings = settings;
    this.#method = method;
    this.#handler = handler;
    this.#raw = raw;
    this.#request = request;
    this.#params = isJsonObject(request.params) ? request.params : {};
    this.#extra = extra;
    this.#signal = extra.signal instanceof AbortSignal ? extra.signal : undefined;
  }

  async handle(presented: Parameters<typeof requestDelegation>[1]): Promise<unknown> {
    if (unauthenticated.has(this.#method)) return this.#handler(this.#request, this.#extra);
    let delegation: Delegation;
    try {
      delegation = await requestDelegation(
        { guard: this.#settings.guard, user: this.#settings.user },
        presented,
        this.#signal,
      );
    } catch (error) {
      const target = this.#target();
      await recordRefusal(
        this.#settings.tracer,
        listings.has(this.#method) ? SpanNames.listTools : SpanNames.authorize,
        target,
        error,
      );
      return this.#refuse(target, errorRefusal(error));
    }
    switch (this.#method) {
      case "tools/list":
        return this.#list(delegation, "tools", (tool) => ({
          server: this.#settings.server,
          tool: tool.name as string,
          annotations: tool.annotations as Record<string, unknown> | undefined,
        }));
      case "resources/list":
        return this.#list(delegation, "resources", (resource) => {
          const uri = canonicalUri(resource.uri);
          return uri === undefined
            ? undefined
            : resourceCall(this.#settings.server, { ...resourceFacts(resource), uri });
        });
      case "resources/templates/list":
        return this.#list(delegation, "resourceTemplates", (template) =>
          typeof template.uriTemplate === "string"
            ? resourceCall(this.#settings.server, { ...resourceFacts(template), template: template.uriTemplate })
            : undefined,
        );
      case "prompts/list":
        return this.#list(delegation, "prompts", (prompt) =>
          typeof prompt.name === "string" ? promptCall(this.#settings.server, prompt.name) : undefined,
        );
      case "tools/call":
        return this.#callTool(delegation);
      case "resources/read":
      case "resources/subscribe":
        return this.#readResource(delegation);
      case "prompts/get":
        return this.#getPrompt(delegation);
      case "completion/complete":
        return this.#complete(delegation);
      default:
        // Anything else (logging/setLevel, resources/unsubscribe, tasks/*, a method of the app's own) needs a chain,
        // no more: it names no tool, resource or prompt to decide on.
        return this.#run(delegation, this.#request);
    }
  }

  /** The handler's listing with only the entries the chain could use (see `Delegation.callableTools`). */
  async #list(
    delegation: Delegation,
    key: string,
    check: (item: JsonObject) => ToolCall | undefined,
  ): Promise<unknown> {
    const listing = await this.#run(delegation, this.#request);
    const items = isJsonObject(listing) ? listing[key] : undefined;
    if (!isJsonObject(listing) || !Array.isArray(items)) {
      const error = new HopguardError(
        "authorization_failed",
        `the server's ${this.#method} answered without a ${key} list`,
      );
      return this.#refuse(this.#target(), errorRefusal(error));
    }
    const entries = items.flatMap((item: unknown) => {
      const call = isJsonObject(item) ? check(item) : undefined;
      return call === undefined ? [] : [{ item, call }];
    });
    try {
      return { ...listing, [key]: await this.#visible(delegation, entries) };
    } catch (error) {
      return this.#refuse(this.#target(), errorRefusal(error));
    }
  }

  async #callTool(delegation: Delegation): Promise<unknown> {
    const { name, arguments: args } = this.#params;
    const target = this.#target();
    let annotations: Record<string, unknown> | undefined;
    if (typeof name === "string") {
      try {
        annotations = await new ServerCatalog(this.#raw, this.#extra).toolAnnotations(name);
      } catch (error) {
        const failure = new HopguardError(
          "authorization_failed",
          `the annotations of ${this.#settings.server}/${name} could not be read from the server's own tool list: ${messageOf(error)}`,
          { cause: error },
        );
        await recordRefusal(this.#settings.tracer, SpanNames.authorize, target, failure);
        return this.#refuse(target, errorRefusal(failure));
      }
    }
    const outcome = await this.#decide(delegation, {
      server: this.#settings.server,
      tool: name as string,
      arguments: args as Record<string, unknown> | undefined,
      annotations,
    });
    if (outcome.type !== "allowed") return this.#refuse(target, this.#refusalOf(delegation, outcome));
    // Exactly what was decided, as a copy the tool may change: never the request's own arguments.
    return this.#run(delegation, {
      ...this.#request,
      params: { ...this.#params, name: outcome.call.tool, arguments: structuredClone(outcome.call.arguments) },
    });
  }

  async #readResource(delegation: Delegation): Promise<unknown> {
    const uri = canonicalUri(this.#params.uri);
    const target = this.#target();
    if (uri === undefined) {
      const error = new InvalidInputError("params.uri", "must be an absolute URI");
      await recordRefusal(this.#settings.tracer, SpanNames.authorize, target, error);
      return this.#refuse(target, errorRefusal(error));
    }
    let call: ToolCall;
    try {
      call = resourceCall(this.#settings.server, await new ServerCatalog(this.#raw, this.#extra).resource(uri));
    } catch (error) {
      const failure = new HopguardError(
        "authorization_failed",
        `the server's resource lists could not be read: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
      await recordRefusal(this.#settings.tracer, SpanNames.authorize, target, failure);
      return this.#refuse(target, errorRefusal(failure));
    }
    const outcome = await this.#decide(delegation, call);
    if (outcome.type !== "allowed") return this.#refuse(target, this.#refusalOf(delegation, outcome));
    // The handler reads the URI that was decided on, in the form it was decided in.
    return this.#run(delegation, { ...this.#request, params: { ...this.#params, uri } });
  }

  async #getPrompt(delegation: Delegation): Promise<unknown> {
    const { name, arguments: args } = this.#params;
    const outcome = await this.#decide(
      delegation,
      promptCall(this.#settings.server, name as string, args as Record<string, unknown> | undefined),
    );
    if (outcome.type !== "allowed") return this.#refuse(this.#target(), this.#refusalOf(delegation, outcome));
    return this.#run(delegation, {
      ...this.#request,
      params: { ...this.#params, name: outcome.call.tool, arguments: structuredClone(outcome.call.arguments) },
    });
  }

  /** Completing an argument reveals values (file names, customers): only for what the chain may see listed. */
  async #complete(delegation: Delegation): Promise<unknown> {
    const ref = isJsonObject(this.#params.ref) ? this.#params.ref : {};
    const target = this.#target();
    let call: ToolCall | undefined;
    try {
      if (ref.type === "ref/prompt" && typeof ref.name === "string") {
        call = promptCall(this.#settings.server, ref.name);
      } else if (ref.type === "ref/resource" && typeof ref.uri === "string") {
        call = resourceCall(
          this.#settings.server,
          await new ServerCatalog(this.#raw, this.#extra).completionTarget(ref.uri),
        );
      }
      if (call === undefined) throw new InvalidInputError("params.ref", "must be a ref/prompt or a ref/resource");
    } catch (error) {
      await recordRefusal(this.#settings.tracer, SpanNames.authorize, target, error);
      return this.#refuse(target, errorRefusal(error));
    }
    let visible: unknown[];
    try {
      visible = await this.#visible(delegation, [{ item: call, call }]);
    } catch (error) {
      return this.#refuse(target, errorRefusal(error));
    }
    if (visible.length === 0) {
      const what = ref.type === "ref/prompt" ? "prompt" : "resource";
      return this.#refuse(target, {
        reason: `${what} ${target.tool} is not one ${delegation.chain.join(" → ")} may see, so neither are its completions`,
      });
    }
    return this.#run(delegation, this.#request);
  }

  /** The entries the chain could use, in order; an entry hopguard cannot even name is not shown. */
  async #visible<T>(delegation: Delegation, entries: readonly { item: T; call: ToolCall }[]): Promise<T[]> {
    const descriptors = entries.flatMap(({ item, call }) => {
      try {
        const { server, tool, annotations } = validateToolCall(call);
        return [{ server, tool, annotations, item }];
      } catch {
        return [];
      }
    });
    const callable = await delegation.callableTools(descriptors, { signal: this.#signal });
    return callable.map((descriptor) => descriptor.item);
  }

  #decide(delegation: Delegation, call: ToolCall): Promise<ToolCallOutcome> {
    return decideToolCall(delegation, call, { signal: this.#signal, tracer: this.#settings.tracer });
  }

  /** A deny, a failure, or an approval no one can give on a server: recorded as declined, then refused. */
  #refusalOf(delegation: Delegation, outcome: Exclude<ToolCallOutcome, { type: "allowed" }>): McpRefusal {
    if (outcome.type === "approval-required") {
      const standing: Decision = delegation.recordApproval(outcome.decision, { approved: false, reason: noApprover });
      return decisionRefusal(standing);
    }
    return outcome.decision === undefined ? errorRefusal(outcome.error) : decisionRefusal(outcome.decision);
  }

  /** The handler, run for `delegation`: code behind it (a tool calling another guarded server) acts for the chain. */
  #run(delegation: Delegation, request: JsonObject): Promise<unknown> {
    return runAs(delegation, () => this.#handler(request, this.#extra));
  }

  /**
   * A refusal: a tool error result the model can read for `tools/call` (unless `onDenied: "error"`, or the call asked
   * for a task, whose result must be a task), a JSON-RPC error for everything else.
   */
  #refuse(target: RefusalTarget, refusal: McpRefusal): unknown {
    const { onDenied, errorCode } = this.#settings;
    if (this.#method === "tools/call" && onDenied === "result" && this.#params.task === undefined) {
      return toolRefusalResult(target, refusal);
    }
    throw refusalError(errorCode, this.#method, target, refusal);
  }

  /** What the request is about, by the policy names of its server and tool, resource or prompt. */
  #target(): RefusalTarget {
    const { server } = this.#settings;
    const name = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
    switch (this.#method) {
      case "tools/call":
        return { server, tool: name(this.#params.name) };
      case "tools/list":
        return { server };
      case "resources/list":
      case "resources/templates/list":
        return { server: resourceServer(server) };
      case "resources/read":
      case "resources/subscribe":
        return { server: resourceServer(server), tool: name(this.#params.uri) };
      case "prompts/list":
        return { server: promptServer(server) };
      case "prompts/get":
        return { server: promptServer(server), tool: name(this.#params.name) };
      case "completion/complete": {
        const ref = isJsonObject(this.#params.ref) ? this.#params.ref : {};
        return ref.type === "ref/prompt"
          ? { server: promptServer(server), tool: name(ref.name) }
          : { server: resourceServer(server), tool: name(ref.uri) };
      }
      default:
        return { server };
    }
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
