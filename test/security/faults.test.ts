// Faults around the PDP and the telemetry pipeline: a PDP that dies, freezes, answers late, errs or talks nonsense, and
// tracers that throw. In each, the recording MCP server shows what ran and the decision span shows why nothing else did.
import { type CheckResourcesRequest, type CheckResourcesResponse, Effect, NotOK, Status } from "@cerbos/core";
import { GRPC } from "@cerbos/grpc";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { INVALID_SPAN_CONTEXT, type Span, SpanStatusCode, type Tracer } from "@opentelemetry/api";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { guardMcpClient } from "../../src/adapters/mcp/index.ts";
import {
  createGuard,
  decideToolCall,
  type PdpClient,
  type PdpFailure,
  PdpUnavailableError,
  SpanAttributes,
  SpanNames,
  type ToolCallOutcome,
} from "../../src/index.ts";
import { type LocalPdp, startLocalPdp } from "../../src/local-pdp.ts";
import { type RecordingServer, startRecordingServer } from "../support/mcp.ts";
import { sharedPdpClient } from "../support/pdp.ts";
import { memoryTracing } from "../support/tracing.ts";
import { alice, scribe } from "../support/users.ts";
import { until, untilDead, untilResumed, untilStopped } from "./support/process-state.ts";
import { startTcpProxy } from "./support/tcp-proxy.ts";
import { drainTasks, watchUnhandledRejections } from "./support/unhandled.ts";

// alice → scribe (a writer agent): the policies allow reading inside alice's workspace and deny reading outside it.
const read = { name: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const readOutside = { name: "read_file", arguments: { path: "/etc/passwd" } };
const asCall = (params: { name: string; arguments: Record<string, unknown> }) => ({
  server: "filesystem",
  tool: params.name,
  arguments: params.arguments,
  annotations: { readOnlyHint: true },
});
const timeoutMs = 300;

const sharedPdp = sharedPdpClient();
const unhandled = watchUnhandledRejections();

let server: RecordingServer;
beforeEach(async () => {
  server = await startRecordingServer();
});
afterEach(async () => {
  await server.close();
  await drainTasks();
  expect(unhandled).toEqual([]);
});

/** The refusal text of a guarded MCP call; fails when the call was not refused. */
function refusal(result: unknown): string {
  const { isError, content } = result as CallToolResult;
  expect(isError, `expected a refusal, got ${JSON.stringify(result)}`).toBe(true);
  return content.map((part) => (part.type === "text" ? part.text : "")).join("");
}

function isRefusal(result: unknown): boolean {
  return (result as CallToolResult).isError === true;
}

function authorizeSpans(spans: readonly ReadableSpan[]): ReadableSpan[] {
  return spans.filter((span) => span.name === SpanNames.authorize);
}

/** The span of a call the PDP could not answer: an error, coded pdp_unavailable, with the PdpUnavailableError. */
function expectUnavailableSpan(span: ReadableSpan | undefined, message?: RegExp): void {
  expect(span?.attributes[SpanAttributes.decision]).toBe("error");
  expect(span?.attributes[SpanAttributes.errorType]).toBe("pdp_unavailable");
  expect(span?.status.code).toBe(SpanStatusCode.ERROR);
  // OpenTelemetry names an exception by its `code` when it has one.
  const exception = span?.events.find((event) => event.name === "exception")?.attributes;
  expect(exception?.["exception.type"]).toBe("pdp_unavailable");
  expect(exception?.["exception.message"]).toBe(span?.status.message);
  if (message !== undefined) expect(span?.status.message).toMatch(message);
}

/** The typed cause of a refusal the PDP could not answer. */
function unavailable(outcome: ToolCallOutcome): PdpUnavailableError {
  expect(outcome.type).toBe("denied");
  const error = outcome.type === "denied" ? outcome.error : undefined;
  expect(PdpUnavailableError.isInstance(error), `expected PdpUnavailableError, got ${String(error)}`).toBe(true);
  return error as PdpUnavailableError;
}

const isToolCheck = (request: CheckResourcesRequest): boolean =>
  request.resources.some((entry) => entry.resource.kind.startsWith("mcp::"));

describe("the PDP process dies or freezes", () => {
  test("a PDP killed mid-run: every call is refused while it is down, and the same guard and client recover on a new PDP", async () => {
    const first = await startLocalPdp();
    const proxy = await startTcpProxy(first.grpcAddress);
    // The client only knows the proxy's address, which stays the same while the PDP behind it is replaced.
    const client = new GRPC(proxy.address, { tls: false });
    let second: LocalPdp | undefined;
    try {
      const tracing = memoryTracing();
      const chain = await createGuard({ client, timeoutMs, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
      const filesystem = guardMcpClient(server.client, { server: "filesystem", delegation: chain });
      tracing.reset();

      type Phase = "up" | "down" | "restarted";
      let phase: Phase = "up";
      const calls: { started: Phase; ended: Phase; result: CallToolResult }[] = [];
      let streaming = true;
      const stream = (async () => {
        while (streaming) {
          const started = phase;
          const result = (await filesystem.callTool(read)) as CallToolResult;
          calls.push({ started, ended: phase, result });
          await new Promise((settle) => setImmediate(settle));
        }
      })();
      const whileDown = () => calls.filter((call) => call.started === "down" && call.ended === "down");

      await until(
        "five calls ran against the first PDP",
        () => calls.filter((call) => !isRefusal(call.result)).length >= 5,
      );
      process.kill(first.pid, "SIGKILL");
      await untilDead(first.pid);
      phase = "down";
      await until("ten calls were made while the PDP was dead", () => whileDown().length >= 10);
      const executedWhileDown = server.executed.length;
      const typed = unavailable(await decideToolCall(chain, asCall(read)));
      expect(["unreachable", "timeout"]).toContain(typed.failure);

      second = await startLocalPdp();
      expect(server.executed.length).toBe(executedWhileDown);
      proxy.retarget(second.grpcAddress);
      phase = "restarted";
      await until(
        "a call after the restart was allowed",
        () => calls.some((call) => call.started === "restarted" && !isRefusal(call.result)),
        15_000,
      );
      streaming = false;
      await stream;

      // While the PDP was dead, nothing ran and every call was refused because it could not answer.
      for (const call of whileDown()) {
        expect(refusal(call.result)).toMatch(/^hopguard refused filesystem\/read_file: PDP /);
      }
      // Over the whole run, exactly the calls that were allowed executed: none slipped through a failing PDP.
      const allowed = calls.filter((call) => !isRefusal(call.result));
      expect(server.executed).toEqual(allowed.map(() => "read_file"));
      const spans = authorizeSpans(tracing.spans());
      expect(spans).toHaveLength(calls.length + 1);
      const decided = (decision: string) =>
        spans.filter((span) => span.attributes[SpanAttributes.decision] === decision);
      expect(decided("allow")).toHaveLength(allowed.length);
      expect(decided("error")).toHaveLength(calls.length + 1 - allowed.length);
      for (const span of decided("error")) expectUnavailableSpan(span);

      // Recovered, it judges again rather than just letting calls through.
      expect(refusal(await filesystem.callTool(readOutside))).toMatch(/denied by (user "alice"|agent "scribe")/);
      expect(authorizeSpans(tracing.spans()).at(-1)?.attributes[SpanAttributes.decision]).toBe("deny");
      expect(server.executed).toHaveLength(allowed.length);
    } finally {
      client.close();
      await proxy.close();
      await Promise.all([first.stop(), second?.stop()]);
    }
  }, 45_000);

  test("a frozen PDP: calls are refused at timeoutMs, its late answers are dropped, and calls run once it thaws", async () => {
    const pdp = await startLocalPdp();
    try {
      const tracing = memoryTracing();
      // Two clients of the one PDP: the gRPC client, which cancels when hopguard gives up, and one that ignores its
      // abort signal, so that the frozen PDP's answers really do arrive late.
      const late = { sent: 0, answers: [] as CheckResourcesResponse[] };
      const deaf: PdpClient = {
        checkResources(request) {
          late.sent++;
          return pdp.client.checkResources(request).then((answer) => {
            late.answers.push(answer);
            return answer;
          });
        },
        planResources: (request) => pdp.client.planResources(request),
      };
      const chains = await Promise.all(
        [pdp.client, deaf].map((client) =>
          createGuard({ client, timeoutMs, tracer: tracing.tracer }).forUser(alice).delegate(scribe),
        ),
      );
      const clients = chains.map((delegation) => guardMcpClient(server.client, { server: "filesystem", delegation }));
      for (const filesystem of clients) expect(isRefusal(await filesystem.callTool(read))).toBe(false);
      expect(server.executed).toEqual(["read_file", "read_file"]);
      tracing.reset();
      late.sent = 0;
      late.answers.length = 0;

      process.kill(pdp.pid, "SIGSTOP");
      let frozen: CallToolResult[];
      let outcomes: ToolCallOutcome[];
      try {
        await untilStopped(pdp.pid);
        frozen = (await Promise.all(clients.map((filesystem) => filesystem.callTool(read)))) as CallToolResult[];
        outcomes = await Promise.all(chains.map((chain) => decideToolCall(chain, asCall(read))));
      } finally {
        process.kill(pdp.pid, "SIGCONT");
      }
      await untilResumed(pdp.pid);
      for (const result of frozen) {
        expect(refusal(result)).toMatch(/^hopguard refused filesystem\/read_file: PDP did not answer within 300 ms/);
      }
      for (const outcome of outcomes) expect(unavailable(outcome).failure).toBe("timeout");

      // The thawed PDP answers the deaf client's requests (2 calls × 2 hops): every answer an allow, and all too late.
      await until("the frozen PDP's late answers arrived", () => late.answers.length === 4);
      expect(late.sent).toBe(4);
      expect(
        late.answers.map((answer) =>
          answer.isAllowed({ resource: { kind: "mcp::filesystem", id: "read_file" }, action: "read_file" }),
        ),
      ).toEqual([true, true, true, true]);
      await drainTasks();
      expect(server.executed).toEqual(["read_file", "read_file"]);
      const spans = authorizeSpans(tracing.spans());
      expect(spans).toHaveLength(4);
      for (const span of spans) expectUnavailableSpan(span, /did not answer within 300 ms/);

      // Thawed, the same clients are allowed again.
      for (const filesystem of clients) expect(isRefusal(await filesystem.callTool(read))).toBe(false);
      expect(server.executed).toEqual(["read_file", "read_file", "read_file", "read_file"]);
    } finally {
      await pdp.stop();
    }
  }, 45_000);
});

describe("a client that ignores its abort signal", () => {
  /** Forwards delegation checks to the shared PDP; `onToolCheck` answers the tool-call checks. */
  function toolChecksBy(onToolCheck: (request: CheckResourcesRequest) => Promise<CheckResourcesResponse>): PdpClient {
    return {
      checkResources: (request, options) =>
        isToolCheck(request) ? onToolCheck(request) : sharedPdp.checkResources(request, options),
      planResources: (request, options) => sharedPdp.planResources(request, options),
    };
  }

  async function guardedOver(client: PdpClient) {
    const tracing = memoryTracing();
    const chain = await createGuard({ client, timeoutMs, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
    tracing.reset();
    return { tracing, chain, filesystem: guardMcpClient(server.client, { server: "filesystem", delegation: chain }) };
  }

  test("one that never settles: the call is refused at timeoutMs as a time-out, and nothing runs", async () => {
    let asked = 0;
    const { tracing, chain, filesystem } = await guardedOver(
      toolChecksBy(() => {
        asked++;
        return new Promise<never>(() => {});
      }),
    );

    expect(refusal(await filesystem.callTool(read))).toMatch(/PDP did not answer within 300 ms/);
    expect(unavailable(await decideToolCall(chain, asCall(read))).failure).toBe("timeout");

    expect(asked).toBe(4);
    expect(server.executed).toEqual([]);
    const spans = authorizeSpans(tracing.spans());
    expect(spans).toHaveLength(2);
    for (const span of spans) expectUnavailableSpan(span, /did not answer within 300 ms/);
  });

  test("one that answers ALLOW after the deadline: the refusal stands and the tool never runs", async () => {
    let release: () => void = () => {};
    const released = new Promise<void>((settle) => {
      release = settle;
    });
    const lateAnswers: CheckResourcesResponse[] = [];
    const { tracing, filesystem } = await guardedOver(
      toolChecksBy(async (request) => {
        // The real PDP's answer, held back until hopguard has given up.
        const answer = await sharedPdp.checkResources(request);
        await released;
        lateAnswers.push(answer);
        return answer;
      }),
    );

    const result = await filesystem.callTool(read);
    release();
    await until("both hops' late answers were handed back", () => lateAnswers.length === 2);
    await drainTasks();

    expect(refusal(result)).toMatch(/PDP did not answer within 300 ms/);
    expect(lateAnswers.map((answer) => answer.results[0]?.actions.read_file)).toEqual([Effect.ALLOW, Effect.ALLOW]);
    expect(server.executed).toEqual([]);
    const [span, ...others] = authorizeSpans(tracing.spans());
    expect(others).toEqual([]);
    expectUnavailableSpan(span, /did not answer within 300 ms/);
  });
});

type Fault = (request: CheckResourcesRequest) => Promise<CheckResourcesResponse>;
type Expected = { refused: "unavailable"; failure: PdpFailure } | { refused: "deny"; deniedBy: string };

const forward = (request: CheckResourcesRequest) => sharedPdp.checkResources(request);
const isHop = (request: CheckResourcesRequest, id: string) => request.principal.id === id;
/** The PDP's real answer, reshaped: what a buggy proxy, a mocked client or a mismatched SDK could hand back. */
const reshaped =
  (reshape: (answer: CheckResourcesResponse) => unknown, onlyHop?: string): Fault =>
  async (request) => {
    const answer = await forward(request);
    return onlyHop === undefined || isHop(request, onlyHop) ? (reshape(answer) as CheckResourcesResponse) : answer;
  };
const withResult = (answer: CheckResourcesResponse, change: Record<string, unknown>) => ({
  ...answer,
  results: answer.results.map((result) => ({ ...result, ...change })),
});

const pdpFaults: { name: string; call?: typeof read; fault: Fault; expected: Expected }[] = [
  {
    name: "NotOK UNAVAILABLE from the agent's hop only",
    fault: async (request) => {
      if (isHop(request, "scribe")) throw new NotOK(Status.UNAVAILABLE, "connection refused");
      return forward(request);
    },
    expected: { refused: "unavailable", failure: "unreachable" },
  },
  {
    name: "NotOK INTERNAL from the user's hop only",
    fault: async (request) => {
      if (isHop(request, "alice")) throw new NotOK(Status.INTERNAL, "policy engine panicked");
      return forward(request);
    },
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "NotOK PERMISSION_DENIED from both hops",
    fault: async () => {
      throw new NotOK(Status.PERMISSION_DENIED, "bad credentials");
    },
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "a NotOK look-alike from another copy of @cerbos/core",
    fault: async () => {
      throw Object.assign(new Error("unavailable"), { code: Status.UNAVAILABLE, details: "no healthy upstream" });
    },
    expected: { refused: "unavailable", failure: "unreachable" },
  },
  {
    name: "a thrown value that is not an Error",
    fault: async () => {
      throw "socket hang up";
    },
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "an ALLOW about another tool, for a call the PDP would deny",
    call: readOutside,
    fault: (request) =>
      forward({
        ...request,
        resources: [{ resource: { kind: "mcp::filesystem", id: "list_allowed_directories" }, actions: ["read_file"] }],
      }),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "an answer about another resource kind",
    fault: reshaped((answer) =>
      withResult(answer, { resource: { ...answer.results[0]?.resource, kind: "mcp::memory" } }),
    ),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "no results",
    fault: reshaped((answer) => ({ ...answer, results: [] })),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "two results for one resource",
    fault: reshaped((answer) => ({ ...answer, results: [...answer.results, ...answer.results] })),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "an empty response",
    fault: reshaped(() => ({}), "scribe"),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "a null response",
    fault: reshaped(() => null, "scribe"),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "a result whose actions throw when read",
    fault: reshaped(
      (answer) => ({
        ...answer,
        results: answer.results.map((result) =>
          Object.defineProperty({ ...result }, "actions", {
            get: failing("result.actions"),
            enumerable: true,
          }),
        ),
      }),
      "scribe",
    ),
    expected: { refused: "unavailable", failure: "error" },
  },
  {
    name: "a missing effect, on the agent's hop",
    fault: reshaped((answer) => withResult(answer, { actions: {} }), "scribe"),
    expected: { refused: "deny", deniedBy: "scribe" },
  },
  {
    name: "no actions at all, on the user's hop",
    fault: reshaped((answer) => withResult(answer, { actions: undefined }), "alice"),
    expected: { refused: "deny", deniedBy: "alice" },
  },
  {
    name: "an effect that is almost EFFECT_ALLOW",
    fault: reshaped((answer) => withResult(answer, { actions: { read_file: "ALLOW" } }), "scribe"),
    expected: { refused: "deny", deniedBy: "scribe" },
  },
  {
    name: "an effect of `true`",
    fault: reshaped((answer) => withResult(answer, { actions: { read_file: true } }), "scribe"),
    expected: { refused: "deny", deniedBy: "scribe" },
  },
  {
    name: "EFFECT_UNSPECIFIED",
    fault: reshaped((answer) => withResult(answer, { actions: { read_file: "EFFECT_UNSPECIFIED" } }), "scribe"),
    expected: { refused: "deny", deniedBy: "scribe" },
  },
];

describe("a PDP that answers with errors or nonsense", () => {
  test.each(pdpFaults)("$name: refused, nothing runs", async ({ call = read, fault, expected }) => {
    const tracing = memoryTracing();
    const client: PdpClient = {
      checkResources: (request, options) =>
        isToolCheck(request) ? fault(request) : sharedPdp.checkResources(request, options),
      planResources: (request, options) => sharedPdp.planResources(request, options),
    };
    const chain = await createGuard({ client, timeoutMs, tracer: tracing.tracer }).forUser(alice).delegate(scribe);
    const filesystem = guardMcpClient(server.client, { server: "filesystem", delegation: chain });
    tracing.reset();

    const text = refusal(await filesystem.callTool(call));
    const outcome = await decideToolCall(chain, asCall(call));

    expect(server.executed).toEqual([]);
    const spans = authorizeSpans(tracing.spans());
    expect(spans).toHaveLength(2);
    if (expected.refused === "unavailable") {
      expect(text).toMatch(/^hopguard refused filesystem\/read_file: PDP /);
      expect(unavailable(outcome).failure).toBe(expected.failure);
      for (const span of spans) expectUnavailableSpan(span);
    } else {
      // A missing or unknown effect is a deny by that hop, never an allow and never "the other hops decide".
      expect(text).toContain(`"${expected.deniedBy}"`);
      expect(outcome.type).toBe("denied");
      expect(outcome.decision?.allowed).toBe(false);
      expect(outcome.decision?.deniedBy).toBe(expected.deniedBy);
      for (const span of spans) {
        expect(span.attributes[SpanAttributes.decision]).toBe("deny");
        expect(span.attributes[SpanAttributes.deniedBy]).toBe(expected.deniedBy);
      }
    }
  });
});

const failing = (where: string) => () => {
  throw new Error(`${where} is broken`);
};

/** A tracer provider whose pipeline has one broken part, in front of an in-memory exporter that still works. */
function providerWith(processor: SpanProcessor): Tracer {
  return new BasicTracerProvider({ spanProcessors: [processor] }).getTracer("broken");
}
const healthyProcessor = (): SpanProcessor => new SimpleSpanProcessor(new InMemorySpanExporter());
const exporterThat = (exportSpans: SpanExporter["export"]): SpanProcessor =>
  new SimpleSpanProcessor({ export: exportSpans, shutdown: async () => {} });

/** A span whose every method throws, but for those given. */
function throwingSpan(working: Partial<Span>): Span {
  return new Proxy(working as Span, {
    get: (target, key) => (key in target ? Reflect.get(target, key) : failing(`span.${String(key)}`)),
  });
}
const tracerOf = (span: Span): Tracer =>
  ({ startSpan: () => span, startActiveSpan: failing("startActiveSpan") }) as unknown as Tracer;

const brokenTelemetry: { name: string; tracer: () => Tracer }[] = [
  {
    name: "a span processor whose onStart throws",
    tracer: () => providerWith(Object.assign(healthyProcessor(), { onStart: failing("onStart") })),
  },
  {
    name: "a span processor whose onEnd throws",
    tracer: () => providerWith(Object.assign(healthyProcessor(), { onEnd: failing("onEnd") })),
  },
  {
    name: "a SimpleSpanProcessor over an exporter whose export throws",
    tracer: () => providerWith(exporterThat(failing("export"))),
  },
  {
    name: "a SimpleSpanProcessor over an exporter that reports failure",
    tracer: () => providerWith(exporterThat((_spans, done) => done({ code: 1, error: new Error("collector down") }))),
  },
  {
    name: "a tracer whose startSpan throws",
    tracer: () => ({ startSpan: failing("startSpan"), startActiveSpan: failing("startActiveSpan") }) as Tracer,
  },
  {
    name: "a tracer whose spans throw from every method",
    tracer: () => tracerOf(throwingSpan({})),
  },
  {
    name: "a tracer whose spans record, then throw from every recording method",
    tracer: () => tracerOf(throwingSpan({ isRecording: () => true, spanContext: () => INVALID_SPAN_CONTEXT })),
  },
  {
    name: "a tracer whose spans throw only from spanContext",
    tracer: () => {
      const working = new BasicTracerProvider({ spanProcessors: [healthyProcessor()] }).getTracer("working");
      return tracerOf(
        new Proxy(working.startSpan("shadow"), {
          get: (target, key) => (key === "spanContext" ? failing("span.spanContext") : Reflect.get(target, key)),
        }),
      );
    },
  },
];

describe("telemetry that throws never changes a decision", () => {
  test.each(brokenTelemetry)("$name: allowed calls run, denied calls do not", async ({ tracer }) => {
    const chain = await createGuard({ client: sharedPdp, timeoutMs: 5000, tracer: tracer() })
      .forUser(alice)
      .delegate(scribe);
    const reference = await createGuard({ client: sharedPdp, timeoutMs: 5000 }).forUser(alice).delegate(scribe);
    const filesystem = guardMcpClient(server.client, { server: "filesystem", delegation: chain });

    expect(isRefusal(await filesystem.callTool(read))).toBe(false);
    expect(refusal(await filesystem.callTool(readOutside))).toContain("denied by");
    expect(server.executed).toEqual(["read_file"]);

    for (const call of [read, readOutside]) {
      const [broken, healthy] = await Promise.all([
        decideToolCall(chain, asCall(call)),
        decideToolCall(reference, asCall(call)),
      ]);
      expect(broken.type).toBe(healthy.type);
      expect(broken.decision?.allowed).toBe(healthy.decision?.allowed);
      expect(broken.decision?.deniedBy).toBe(healthy.decision?.deniedBy);
      expect(broken.decision?.hops.map((hop) => [hop.principalId, hop.effect, hop.policy])).toEqual(
        healthy.decision?.hops.map((hop) => [hop.principalId, hop.effect, hop.policy]),
      );
    }
    expect(server.executed).toEqual(["read_file"]);
  });
});
