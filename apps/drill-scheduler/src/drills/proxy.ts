// A TCP proxy between a sandbox copy and its exchange, so a drill can cut the exchange for
// the copy alone: production keeps its connection.
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private constructor(
    readonly server: Server,
    /** The URL the copy is given in place of the exchange's. */
    readonly url: string,
    readonly sockets: Set<Socket>,
  ) {}

  static async start(upstream: string): Promise<TcpProxy> {
    const target = new URL(upstream);
    const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const remote = connect(port, target.hostname);
      for (const s of [client, remote]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          remote.destroy();
        });
      }
      client.pipe(remote);
      remote.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const local = new URL(upstream);
    local.hostname = '127.0.0.1';
    local.port = String((server.address() as { port: number }).port);
    return new TcpProxy(server, local.toString().replace(/\/$/, ''), sockets);
  }

  /** The exchange becomes unreachable: open connections drop, new ones are refused. */
  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.cut();
  }
}

/** A TCP port nothing listens on right now (on 127.0.0.1). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
