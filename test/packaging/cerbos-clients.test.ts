import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { GRPC } from "@cerbos/grpc";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createGuard, type Delegation, PdpUnavailableError } from "../../src/index.ts";
import { cerbosBinaryPath } from "../../src/local-pdp.ts";
import { alice, researcher } from "../support/users.ts";

// The guard's client is the application's choice: `@cerbos/grpc` or `@cerbos/http`, both optional peers. Here both
// talk to a PDP run the way production runs one — its own process, TLS with a certificate from a private CA — and
// each trusts that CA only the way its README section says: gRPC through `tls: createSecureContext({ ca })`, HTTP
// (Node's fetch) through NODE_EXTRA_CA_CERTS in the process that makes the calls.
const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const folder = mkdtempSync(join(tmpdir(), "hopguard-tls-pdp-"));
const file = (name: string) => join(folder, name);
let pdp: ChildProcess | undefined;
let grpcAddress = "";
let httpAddress = "";

const read = { server: "filesystem", tool: "read_file", arguments: { path: "/workspace/alice/notes.md" } };
const write = { server: "filesystem", tool: "write_file", arguments: { path: "/workspace/alice/x.md", content: "x" } };

async function openssl(...args: string[]): Promise<void> {
  await run("openssl", args, { cwd: folder });
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (typeof address !== "object" || address === null) throw new Error("no port");
  return address.port;
}

function healthy(ca: Buffer): Promise<boolean> {
  return new Promise((settle) => {
    const asked = request(
      `${httpAddress}/_cerbos/health`,
      { ca, servername: "localhost", timeout: 1000 },
      (response) => {
        response.resume();
        settle(response.statusCode === 200);
      },
    );
    asked.on("error", () => settle(false));
    asked.end();
  });
}

beforeAll(async () => {
  // A CA, and a server certificate it signed for 127.0.0.1 and localhost.
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=hopguard test CA",
  );
  await openssl("req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost");
  writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "server.ext",
  );

  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  grpcAddress = `127.0.0.1:${grpcPort}`;
  httpAddress = `https://127.0.0.1:${httpPort}`;
  pdp = spawn(
    cerbosBinaryPath(),
    [
      "server",
      `--set=storage.driver=disk`,
      `--set=storage.disk.directory=${join(root, "policies")}`,
      `--set=server.grpcListenAddr=${grpcAddress}`,
      `--set=server.httpListenAddr=127.0.0.1:${httpPort}`,
      `--set=server.tls.cert=${file("server.pem")}`,
      `--set=server.tls.key=${file("server.key")}`,
    ],
    { env: { ...process.env, CERBOS_NO_TELEMETRY: "1" }, stdio: "ignore" },
  );
  const ca = readFileSync(file("ca.pem"));
  for (let tries = 0; !(await healthy(ca)); tries++) {
    if (tries > 300 || pdp.exitCode !== null) throw new Error("the TLS PDP did not get healthy");
    await new Promise((settle) => setTimeout(settle, 20));
  }
}, 30_000);

afterAll(async () => {
  if (pdp !== undefined && pdp.exitCode === null) {
    pdp.kill("SIGTERM");
    await once(pdp, "exit");
  }
  rmSync(folder, { recursive: true, force: true });
});

async function researcherOf(client: GRPC): Promise<Delegation> {
  return createGuard({ client }).forUser(alice).delegate(researcher);
}

describe("@cerbos/grpc as the guard's client, over TLS with a private CA", () => {
  test("trusting the CA: alice's researcher may read in her workspace and may not write", async () => {
    const client = new GRPC(grpcAddress, { tls: createSecureContext({ ca: readFileSync(file("ca.pem")) }) });
    try {
      const chain = await researcherOf(client);
      const allowed = await chain.authorize(read);
      expect(allowed.allowed).toBe(true);
      expect(allowed.hops.map((hop) => hop.effect)).toEqual(["EFFECT_ALLOW", "EFFECT_ALLOW"]);
      const denied = await chain.authorize(write);
      expect(denied.allowed).toBe(false);
      expect(denied.deniedBy).toBe("researcher");
    } finally {
      client.close();
    }
  });

  test("not trusting the CA, nothing is decided: the delegation fails as PDP unavailable", async () => {
    const client = new GRPC(grpcAddress, { tls: true });
    try {
      const error = await researcherOf(client).then(
        () => undefined,
        (failure: unknown) => failure,
      );
      expect(PdpUnavailableError.isInstance(error)).toBe(true);
    } finally {
      client.close();
    }
  });
});

describe("@cerbos/http as the guard's client, over TLS with a private CA", () => {
  // Node's fetch takes no CA per request; NODE_EXTRA_CA_CERTS is read when the process starts.
  const script = `
    import { HTTP } from "@cerbos/http";
    import { createGuard } from ${JSON.stringify(new URL("src/index.ts", `file://${root}/`).href)};
    const [url] = process.argv.slice(1);
    const guard = createGuard({ client: new HTTP(url) });
    const outcome = {};
    try {
      const chain = await guard.forUser(${JSON.stringify(alice)}).delegate(${JSON.stringify(researcher)});
      const read = await chain.authorize(${JSON.stringify(read)});
      const write = await chain.authorize(${JSON.stringify(write)});
      Object.assign(outcome, { read: read.allowed, readEffects: read.hops.map((hop) => hop.effect), write: write.allowed, writeDeniedBy: write.deniedBy });
    } catch (error) {
      Object.assign(outcome, { error: error.name, failure: error.failure });
    }
    console.log(JSON.stringify(outcome));
  `;
  const http = async (env: NodeJS.ProcessEnv) => {
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script, httpAddress], {
      cwd: root,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: "", ...env },
      timeout: 20_000,
    });
    return JSON.parse(stdout) as Record<string, unknown>;
  };

  test("trusting the CA (NODE_EXTRA_CA_CERTS): the same allow and the same deny", async () => {
    expect(await http({ NODE_EXTRA_CA_CERTS: file("ca.pem") })).toEqual({
      read: true,
      readEffects: ["EFFECT_ALLOW", "EFFECT_ALLOW"],
      write: false,
      writeDeniedBy: "researcher",
    });
  });

  test("not trusting the CA, nothing is decided: PDP unavailable", async () => {
    expect(await http({})).toEqual({ error: "PdpUnavailableError", failure: expect.any(String) });
  });
});
