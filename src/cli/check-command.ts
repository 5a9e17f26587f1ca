import { GRPC } from "@cerbos/grpc";
import {
  approvalRequest,
  createGuard,
  type Decision,
  type Delegation,
  DelegationError,
  formatDecisionTree,
  type PdpClient,
} from "../index.ts";
import { type LocalPdp, startLocalPdp } from "../local-pdp.ts";
import { CliError, ExitCode } from "./cli-error.ts";
import { parseAgent, parseObject, parseUser } from "./principal-spec.ts";

/** Options of `hopguard check`. */
export interface CheckOptions {
  /** `<server>/<tool>`. */
  readonly target: string;
  /** The call's arguments, a JSON object. */
  readonly arguments: string;
  readonly user: string;
  readonly agents: readonly string[];
  /** The tool's annotations, a JSON object. */
  readonly annotations?: string | undefined;
  /** The policy folder of the local PDP to start, when `pdp` is not given. */
  readonly policies: string;
  /** A running PDP's gRPC address. */
  readonly pdp?: string | undefined;
  readonly tls: boolean;
  readonly timeoutMs: number;
  readonly json: boolean;
}

/**
 * `hopguard check`: builds the chain hop by hop, authorizes one tool call and prints the per-hop decision tree (or
 * the `Decision` as JSON). Resolves to 0 when allowed, 1 when denied (a refused delegation included).
 */
export async function checkCommand(options: CheckOptions): Promise<number> {
  const slash = options.target.indexOf("/");
  if (slash <= 0 || slash === options.target.length - 1) {
    throw new CliError(`"${options.target}": name the call as <server>/<tool>, e.g. filesystem/read_text_file`);
  }
  const call = {
    server: options.target.slice(0, slash),
    tool: options.target.slice(slash + 1),
    arguments: parseObject(options.arguments, "arguments"),
    annotations: options.annotations === undefined ? undefined : parseObject(options.annotations, "--annotations"),
  };
  const user = parseUser(options.user);
  const agents = options.agents.map(parseAgent);
  const out = (text: string): void => {
    process.stdout.write(`${text}\n`);
  };

  let pdp: LocalPdp | undefined;
  let remote: GRPC | undefined;
  let client: PdpClient;
  if (options.pdp === undefined) {
    pdp = await startLocalPdp({ policyDir: options.policies });
    client = pdp.client;
  } else {
    remote = new GRPC(options.pdp, { tls: options.tls });
    client = remote;
  }
  try {
    const guard = createGuard({ client, timeoutMs: options.timeoutMs });
    let delegation: Delegation = guard.forUser(user);
    const steps: string[] = [];
    for (const agent of agents) {
      const chain = delegation.chain.join(" → ");
      try {
        delegation = await delegation.delegate(agent);
      } catch (error) {
        if (!DelegationError.isInstance(error)) throw error;
        const decision = error.decision;
        if (options.json) {
          out(JSON.stringify(decision ?? { allowed: false, code: error.code, reason: error.message }, null, 2));
        } else {
          for (const step of steps) out(step);
          out(`⇒ delegation ${chain} ⇒ ${agent.id}: REFUSED`);
          out(
            decision === undefined ? `DENY  delegate to ${agent.id}  ${error.message}` : formatDecisionTree(decision),
          );
        }
        return ExitCode.denied;
      }
      steps.push(`⇒ delegation ${chain} ⇒ ${agent.id}: allowed`);
    }
    const decision = await delegation.authorize(call);
    if (options.json) {
      out(JSON.stringify(decision, null, 2));
    } else {
      for (const step of steps) out(step);
      out(`[${decision.chain.join(" → ")}] ${call.server}/${call.tool} ${JSON.stringify(call.arguments)}`);
      out(formatDecisionTree(decision));
      const approval = approvalNote(decision);
      if (approval !== undefined) out(approval);
    }
    return decision.allowed ? ExitCode.ok : ExitCode.denied;
  } finally {
    remote?.close();
    await pdp?.stop();
  }
}

function approvalNote(decision: Decision): string | undefined {
  const request = approvalRequest(decision);
  if (request === undefined) return undefined;
  const reasons = request.reasons.length === 0 ? "" : `: ${request.reasons.join("; ")}`;
  return `  … and a rule asks a person to approve it first${reasons}`;
}
