#!/usr/bin/env node
import { createRequire } from "node:module";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { HopguardError } from "../index.ts";
import { checkCommand } from "./check-command.ts";
import { CliError, ExitCode } from "./cli-error.ts";
import { initCommand } from "./init-command.ts";
import { lintCommand } from "./lint-command.ts";
import { pdpCommand } from "./pdp-command.ts";
import type { McpSource } from "./server-listing.ts";

/** The `hopguard` command line: a thin layer over hopguard's public API. */
function program(): Command {
  const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };
  const hopguard = new Command("hopguard")
    .description("Cerbos policies for every hop of an AI agent's delegation chain")
    .version(version)
    .showHelpAfterError("(add --help for usage)")
    .addHelpText(
      "after",
      "\nExit codes: 0 done (check: allowed), 1 check: denied, lint: findings, init: the policies do not compile or\n" +
        "a test fails; 2 the command could not do its job (bad input, server or PDP unreachable).",
    )
    .exitOverride();

  hopguard
    .command("init")
    .summary("write a starter policy set from a live MCP server")
    .description(
      "Connects to a live MCP server, lists its tools (with annotations), resources and prompts, and writes a " +
        "starter policy set: one mcp::<server> resource policy whose rules follow the tools' annotations, the agent " +
        "delegation policy, derived roles for chains and a Cerbos test suite. Then runs `cerbos compile` on the " +
        "folder and prints who may call each tool. Never overwrites a file without --force.",
    )
    .argument("[command...]", "with --from-mcp: the server's command and its arguments, after --")
    .option("--from-mcp", "run the MCP server given after -- and talk to it over stdio")
    .option("--from-mcp-url <url>", "talk to an MCP server over Streamable HTTP")
    .addOption(
      new Option("--bearer-token <token>", "with --from-mcp-url: the bearer token to send").env(
        "HOPGUARD_BEARER_TOKEN",
      ),
    )
    .option("--server <name>", "the server's name in policies (kind mcp::<name>); default: from the server's own name")
    .option("--policies <dir>", "the folder to write the policies into", "policies")
    .addOption(
      new Option("--destructive <who>", "who may call destructive tools: the user, or agents too with approval")
        .choices(["approval", "users"])
        .default("approval"),
    )
    .option("--force", "overwrite files that already exist with other contents", false)
    .option("--timeout <ms>", "how long to wait for the server to start and answer", milliseconds, 60_000)
    .option("--quiet", "print no progress", false)
    .action(async (command: string[], options) => {
      process.exitCode = await initCommand({
        source: mcpSource(command, options),
        policies: options.policies,
        server: options.server,
        destructive: options.destructive,
        force: options.force,
        timeoutMs: options.timeout,
        quiet: options.quiet,
      });
    });

  hopguard
    .command("check")
    .summary("explain the decision on one tool call by a chain")
    .description(
      "Builds the chain (the user, then each --agent in order, every delegation checked), authorizes the call at " +
        "every hop and prints the per-hop decision tree. Exit code 0 when allowed, 1 when denied.",
    )
    .argument("<target>", "<server>/<tool>, e.g. filesystem/read_text_file")
    .argument("[arguments]", "the call's arguments as a JSON object", "{}")
    .requiredOption("--user <spec>", 'the user: id:roles[:json attributes], e.g. alice:user:{"department":"eng"}')
    .option(
      "--agent <spec>",
      'an agent the chain is delegated to, in order (repeatable): id:roles[:json scope], e.g. helper:agent:{"tools":["filesystem/read_*"]}',
      (spec: string, specs: string[]) => [...specs, spec],
      [] as string[],
    )
    .option("--annotations <json>", "the tool's MCP annotations as a JSON object, for policies that key on them")
    .option("--policies <dir>", "start a local PDP on this policy folder", "policies")
    .option("--pdp <address>", "ask the Cerbos PDP at this gRPC address (host:port) instead of starting one")
    .option("--tls", "with --pdp: connect with TLS", false)
    .option("--timeout <ms>", "how long the PDP may take to answer one round of checks", milliseconds, 5000)
    .option("--json", "print the Decision as JSON", false)
    .action(async (target: string, args: string, options) => {
      process.exitCode = await checkCommand({
        target,
        arguments: args,
        user: options.user,
        agents: options.agent,
        annotations: options.annotations,
        policies: options.policies,
        pdp: options.pdp,
        tls: options.tls,
        timeoutMs: options.timeout,
        json: options.json,
      });
    });

  hopguard
    .command("pdp")
    .summary("run a local Cerbos PDP on a policy folder")
    .description(
      "Starts a Cerbos PDP on loopback, prints its gRPC and HTTP addresses, reloads the policies when they change " +
        "and stops on Ctrl-C.",
    )
    .option("--policies <dir>", "the policy folder to serve", "policies")
    .option("--audit-log <file>", "write Cerbos's access and decision logs to this file")
    .action(async (options) => {
      process.exitCode = await pdpCommand({ policies: options.policies, auditLog: options.auditLog });
    });

  hopguard
    .command("lint")
    .summary("find what a live MCP server offers that no policy covers, and rules naming tools it lacks")
    .description(
      "Lists a live MCP server's tools, resources and prompts and reports those no policy covers (every principal " +
        "would get no matching policy) and policy rules that name tools the server does not have. Exit code 1 when " +
        "there are any.",
    )
    .argument("[command...]", "with --from-mcp: the server's command and its arguments, after --")
    .option("--policies <dir>", "the policy folder to check", "policies")
    .option("--from-mcp", "run the MCP server given after -- and talk to it over stdio")
    .option("--from-mcp-url <url>", "talk to an MCP server over Streamable HTTP")
    .addOption(
      new Option("--bearer-token <token>", "with --from-mcp-url: the bearer token to send").env(
        "HOPGUARD_BEARER_TOKEN",
      ),
    )
    .option("--server <name>", "the server's name in policies (kind mcp::<name>); default: from the server's own name")
    .option("--timeout <ms>", "how long to wait for the server to start and answer", milliseconds, 60_000)
    .option("--quiet", "print no progress", false)
    .action(async (command: string[], options) => {
      process.exitCode = await lintCommand({
        source: mcpSource(command, options),
        policies: options.policies,
        server: options.server,
        timeoutMs: options.timeout,
        quiet: options.quiet,
      });
    });

  return hopguard;
}

function milliseconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new InvalidArgumentError("a whole number of milliseconds > 0");
  return parsed;
}

/** Exactly one of `--from-mcp -- <command…>` and `--from-mcp-url <url>`. */
function mcpSource(
  command: string[],
  options: { fromMcp?: boolean; fromMcpUrl?: string; bearerToken?: string },
): McpSource {
  if (options.fromMcp === true && options.fromMcpUrl !== undefined) {
    throw new CliError("give either --from-mcp -- <command…> or --from-mcp-url <url>, not both");
  }
  if (options.fromMcpUrl !== undefined) {
    if (command.length > 0) throw new CliError(`unexpected arguments: ${command.join(" ")}`);
    return { url: options.fromMcpUrl, bearerToken: options.bearerToken };
  }
  if (options.fromMcp !== true) {
    throw new CliError("say where the MCP server is: --from-mcp -- <command…> or --from-mcp-url <url>");
  }
  if (command.length === 0) throw new CliError("--from-mcp needs the server's command after --");
  if (options.bearerToken !== undefined && process.env.HOPGUARD_BEARER_TOKEN === undefined) {
    throw new CliError("--bearer-token goes with --from-mcp-url");
  }
  return { command };
}

try {
  await program().parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed the help, the version or what was wrong with the arguments.
    process.exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.failed;
  } else if (error instanceof CliError) {
    process.stderr.write(`hopguard: ${error.message}\n`);
    process.exitCode = error.exitCode;
  } else if (HopguardError.isInstance(error)) {
    process.stderr.write(`hopguard: ${error.message} (${error.code})\n`);
    process.exitCode = ExitCode.failed;
  } else {
    process.stderr.write(`hopguard: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = ExitCode.failed;
  }
}
