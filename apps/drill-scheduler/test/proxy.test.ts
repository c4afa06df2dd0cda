// The read-only venue proxy between a sandbox copy and the exchange: reads pass, changes
// never reach the venue, and a cut makes it unreachable.
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadOnlyVenueProxy } from '../src/drills/proxy.js';

const seen: Array<{ method: string; url: string; key: string | undefined }> = [];
const venue = createServer((req, res) => {
  seen.push({ method: req.method as string, url: req.url as string, key: req.headers['x-mbx-apikey'] as string });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, url: req.url }));
});
let upstream: string;

beforeAll(async () => {
  await new Promise<void>((r) => venue.listen(0, '127.0.0.1', () => r()));
  upstream = `http://127.0.0.1:${(venue.address() as { port: number }).port}`;
});
afterAll(() => {
  venue.close();
});

describe('the read-only venue proxy', () => {
  it('passes reads with their query and key, refuses every change, and can be cut', async () => {
    const proxy = await ReadOnlyVenueProxy.start(upstream);
    const read = await fetch(`${proxy.url}/api/v3/openOrders?timestamp=1&signature=abc`, {
      headers: { 'X-MBX-APIKEY': 'k1' },
    });
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({ ok: true, url: '/api/v3/openOrders?timestamp=1&signature=abc' });
    for (const method of ['POST', 'DELETE', 'PUT']) {
      const change = await fetch(`${proxy.url}/api/v3/order?symbol=BTCUSDT`, {
        method,
        headers: { 'X-MBX-APIKEY': 'k1' },
      });
      expect(change.status).toBe(403);
      expect(((await change.json()) as { msg: string }).msg).toContain('read only');
    }
    expect(seen).toEqual([{ method: 'GET', url: '/api/v3/openOrders?timestamp=1&signature=abc', key: 'k1' }]);
    expect({ forwarded: proxy.forwarded, refused: proxy.refused }).toEqual({ forwarded: 1, refused: 3 });

    await proxy.cut();
    await expect(fetch(`${proxy.url}/api/v3/ping`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    expect(seen).toHaveLength(1);
  });
});
