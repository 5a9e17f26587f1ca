import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";

/** A loopback TCP proxy whose target can change, so a client keeps one address while the server behind it is replaced. */
export interface TcpProxy {
  /** `127.0.0.1:port`, for `new GRPC(address, { tls: false })`. */
  readonly address: string;
  /** Sends new connections to `target` (`host:port`) and drops the open ones, as a restarted server would. */
  retarget(target: string): void;
  close(): Promise<void>;
}

/**
 * Starts a proxy to `target`. A connection whose upstream cannot be reached, or closes, is destroyed on both sides,
 * so the client sees exactly what it would see talking to the server directly: a reset connection.
 */
export async function startTcpProxy(target: string): Promise<TcpProxy> {
  let current = target;
  const pairs = new Set<[Socket, Socket]>();
  const server = createServer((downstream) => {
    const [host = "127.0.0.1", port = "0"] = current.split(":");
    const upstream = connect({ host, port: Number(port) });
    const pair: [Socket, Socket] = [downstream, upstream];
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      downstream.destroy();
      upstream.destroy();
    };
    for (const socket of pair) {
      socket.on("error", drop);
      socket.on("close", drop);
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("the proxy got no port");

  const dropAll = (): void => {
    for (const pair of pairs) for (const socket of pair) socket.destroy();
    pairs.clear();
  };
  return {
    address: `127.0.0.1:${address.port}`,
    retarget(next) {
      current = next;
      dropAll();
    },
    async close() {
      dropAll();
      await new Promise((settle) => server.close(settle));
    },
  };
}
