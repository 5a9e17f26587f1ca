import type { FastMCP, FastMCPSessionAuth, Logger, Tool } from "fastmcp";
import { base64url } from "jose";
import { z } from "zod";
import { currentDelegation } from "../../../src/current-delegation.ts";
import type { ActorInput, TokenSigner } from "../../../src/index.ts";

/** What the app's own code ran: which entry, with what, for which chain (none when it ran outside any). */
export interface Execution {
  readonly what: string;
  readonly chain: readonly string[] | undefined;
  readonly arguments?: unknown;
}

/** A FastMCP session's auth in these tests: the person `authenticate` recognised. */
export type PersonAuth = { person: ActorInput } & Record<string, unknown>;

/** FastMCP logs to the console (stdout, which is the stdio transport): tests keep it quiet, on stderr when asked. */
export function quietLogger(toStderr = false): Logger {
  const write = (...args: unknown[]) => {
    if (toStderr) process.stderr.write(`${args.map(String).join(" ")}\n`);
  };
  return { debug: () => {}, error: write, info: () => {}, log: () => {}, warn: write };
}

/** A signer whose tokens are tampered with: the second hop's roles edited to a writer's, the signature kept. */
export function tamperingSigner(signer: TokenSigner): TokenSigner {
  return {
    ...signer,
    sign: async (request) => {
      const [header, payload, signature] = (await signer.sign(request)).split(".") as [string, string, string];
      const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload)));
      claims.hopguard.chain[1].roles = ["agent", "writer"];
      return [header, base64url.encode(JSON.stringify(claims)), signature].join(".");
    },
  };
}

const writeParameters = z.object({ path: z.string(), content: z.string() });

/** `write_file`, which the tests also add while sessions are open. */
export function writeFileTool<T extends FastMCPSessionAuth>(
  record: (execution: Execution) => void,
): Tool<T, typeof writeParameters> {
  return {
    name: "write_file",
    description: "Write a file",
    parameters: writeParameters,
    annotations: { destructiveHint: true },
    execute: async (args) => {
      record({ what: "write_file", chain: currentDelegation()?.chain, arguments: args });
      return `wrote ${args.path}`;
    },
  };
}

/**
 * Registers a "filesystem" app's tools, resources, a template and prompts on `app`; each records that it ran, so
 * what a guard let through — and nothing else — ends up recorded. `withWrite: false` leaves `write_file` out (a test
 * adds it later).
 */
export function registerFilesystem<T extends FastMCPSessionAuth>(
  app: FastMCP<T>,
  record: (execution: Execution) => void,
  options: { withWrite?: boolean } = {},
): void {
  const ran = (what: string, args?: unknown) =>
    record({ what, chain: currentDelegation()?.chain, ...(args === undefined ? {} : { arguments: args }) });
  app.addTool({
    name: "read_file",
    description: "Read a file",
    parameters: z.object({ path: z.string() }),
    annotations: { readOnlyHint: true },
    execute: async (args) => {
      ran("read_file", args);
      return `contents of ${args.path}`;
    },
  });
  if (options.withWrite !== false) app.addTool(writeFileTool<T>(record));
  for (const [name, uri] of [
    ["alice-notes", "file:///workspace/alice/notes.md"],
    ["bob-pipeline", "file:///workspace/bob/pipeline.md"],
    ["runbook", "docs://engineering/runbook"],
    ["playbook", "docs://sales/playbook"],
  ] as const) {
    app.addResource({
      name,
      uri,
      mimeType: "text/markdown",
      load: async () => {
        ran(`read ${uri}`);
        return { text: `the text of ${name}` };
      },
    });
  }
  app.addResourceTemplate({
    name: "workspace-file",
    uriTemplate: "file:///workspace/{user}/{file}",
    mimeType: "text/plain",
    arguments: [
      { name: "user", required: true },
      {
        name: "file",
        required: true,
        complete: async (value) => {
          ran("complete file");
          return { values: ["notes.md", "todo.md", "salaries.csv"].filter((file) => file.startsWith(value)) };
        },
      },
    ],
    load: async (args) => {
      ran(`read file:///workspace/${args.user}/${args.file}`, args);
      return { text: `the text of ${args.file}` };
    },
  });
  app.addPrompt({
    name: "code_review",
    description: "Review the current change",
    load: async () => {
      ran("prompt code_review");
      return "Review this change.";
    },
  });
  app.addPrompt({
    name: "sales_pitch",
    description: "Pitch to a customer",
    arguments: [
      {
        name: "customer",
        required: true,
        complete: async (value) => {
          ran("complete customer");
          return { values: ["acme", "globex"].filter((customer) => customer.startsWith(value)) };
        },
      },
    ],
    load: async (args) => {
      ran("prompt sales_pitch", args);
      return `Pitch to ${args.customer}`;
    },
  });
}
