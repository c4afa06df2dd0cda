// The venue as a drill's sandbox copy sees it: a read-only HTTP proxy. The copy shares the
// exchange account with production, so it may read (balances, orders, trades) but never
// place or cancel an order — a copy restarted with its kill switch ON would otherwise cancel
// production's working orders. The drill can also cut it, to make the venue unreachable for
// the copy alone.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const UPSTREAM_TIMEOUT_MS = 15_000;
/** Headers not passed on: hop-by-hop, or recomputed by fetch. */
const SKIP = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'accept-encoding']);

export class ReadOnlyVenueProxy {
  /** Requests that would have changed something at the venue, refused. */
  refused = 0;
  forwarded = 0;

  private constructor(
    readonly server: Server,
    /** The URL the copy is given in place of the exchange's. */
    readonly url: string,
    private readonly sockets: Set<Socket>,
  ) {}

  static async start(upstream: string): Promise<ReadOnlyVenueProxy> {
    const base = upstream.replace(/\/+$/, '');
    const sockets = new Set<Socket>();
    let proxy: ReadOnlyVenueProxy | undefined;
    const server = createServer((req, res) => void proxy?.handle(base, req, res));
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    proxy = new ReadOnlyVenueProxy(server, url, sockets);
    return proxy;
  }

  private async handle(base: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.refused++;
      req.resume();
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ code: -2015, msg: "read only: a drill's sandbox copy may not change anything at the venue" }),
      );
      return;
    }
    try {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && !SKIP.has(k)) headers[k] = v;
      const answer = await fetch(`${base}${req.url ?? '/'}`, {
        method: req.method,
        headers,
        signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
      });
      this.forwarded++;
      const body = Buffer.from(await answer.arrayBuffer());
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
      res.end(body);
    } catch (err) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: -1001, msg: `the venue did not answer: ${(err as Error).message}` }));
    }
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
