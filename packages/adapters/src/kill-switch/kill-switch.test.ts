// The kill-switch client against a real HTTP server and real files. The server is a stand-in
// that imitates the paper-trader's kill-switch routes and answers; the paper-trader itself is
// tested in apps/paper-trader.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KillSwitchEvent, type KillSwitchFile, LifeboatError, TargetConfig } from '@lifeboat/domain';
import { afterEach, describe, expect, it } from 'vitest';
import { createKillSwitch, HttpFileKillSwitch, KILL_SWITCH_FILE_TRIGGER } from './index.js';

interface FakeTrader {
  url: string;
  server: Server;
  requests: { method: string; url: string; body: unknown; authorization?: string }[];
  state: KillSwitchFile;
  close(): Promise<void>;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: unknown) => void;

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-kill-switch-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function event(i: number, activated: boolean): KillSwitchEvent {
  return {
    trigger: 'MANUAL',
    reason: `episode ${i}`,
    timestamp: new Date(Date.UTC(2025, 0, 1, i)).toISOString(),
    metadata: { operator: 'ops' },
    activated,
  };
}

async function listen(handler: Handler): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = null;
      try {
        body = text ? JSON.parse(text) : null;
      } catch {
        body = text;
      }
      handler(req, res, body);
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
  };
  cleanups.push(close);
  return { server, url: `http://127.0.0.1:${port}`, close };
}

/** Sofia's routes as the paper-trader answers them: the file's shape, plus cancelled orders on activation. */
async function fakeTrader(initial: KillSwitchFile): Promise<FakeTrader> {
  const requests: FakeTrader['requests'] = [];
  const trader = { state: structuredClone(initial) } as { state: KillSwitchFile };
  const change = (to: 'ON' | 'OFF', reason: string) => {
    const timestamp = new Date().toISOString();
    trader.state = {
      state: to,
      events: [...trader.state.events, { trigger: 'api', reason, timestamp, metadata: {}, activated: to === 'ON' }],
      last_updated: timestamp,
    };
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const http = await listen((req, res, body) => {
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      body,
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
    });
    const reason = (body as { reason?: unknown } | null)?.reason;
    if (req.method === 'GET' && req.url === '/kill-switch') return send(res, 200, trader.state);
    if (req.method === 'POST' && (req.url === '/kill-switch/activate' || req.url === '/kill-switch/deactivate')) {
      if (typeof reason !== 'string' || reason.length === 0) {
        return send(res, 400, { error: "body must have required property 'reason'" });
      }
      if (req.url === '/kill-switch/activate') {
        change('ON', reason);
        return send(res, 200, { ...trader.state, cancelled_orders: 2 });
      }
      change('OFF', reason);
      return send(res, 200, trader.state);
    }
    send(res, 404, { error: `no route ${req.method} ${req.url}` });
  });
  return {
    ...http,
    requests,
    get state() {
      return trader.state;
    },
  } as FakeTrader;
}

/** A port nothing listens on: a server started and stopped again. */
async function refusedUrl(): Promise<string> {
  const http = await listen(() => {});
  await http.close();
  return http.url;
}

async function readState(file: string): Promise<KillSwitchFile> {
  return JSON.parse(await readFile(file, 'utf8')) as KillSwitchFile;
}

const seeded: KillSwitchFile = {
  state: 'OFF',
  events: [event(1, true), event(2, false), event(3, true)],
  last_updated: '2025-01-01T03:00:00.000Z',
};

describe('HttpFileKillSwitch', () => {
  it('activates through the API when the target answers, and leaves the state file to the target', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    const trader = await fakeTrader({ ...seeded, state: 'OFF' });
    const client = new HttpFileKillSwitch({ apiUrl: trader.url, timeoutMs: 2000, stateFile });

    const reading = await client.activate('restore app-crash', { run: 'r1' });

    expect(reading.via).toBe('api');
    expect(reading.state).toBe('ON');
    expect(reading.fallback).toBeUndefined();
    expect(reading.file?.events).toHaveLength(4);
    expect(trader.requests).toEqual([
      { method: 'POST', url: '/kill-switch/activate', body: { reason: 'restore app-crash' } },
    ]);
    await expect(readFile(stateFile)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('deactivates and reads the status through the API', async () => {
    const dir = await tempDir();
    const trader = await fakeTrader({ ...seeded, state: 'ON' });
    const client = new HttpFileKillSwitch({
      apiUrl: `${trader.url}/`,
      timeoutMs: 2000,
      stateFile: join(dir, 'kill_switch_state.json'),
    });

    const off = await client.deactivate('reconciliation passed');
    const status = await client.status();

    expect(off).toMatchObject({ via: 'api', state: 'OFF' });
    expect(status).toMatchObject({ via: 'api', state: 'OFF' });
    expect(status.file?.events.at(-1)).toMatchObject({ reason: 'reconciliation passed', activated: false });
    expect(trader.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /kill-switch/deactivate',
      'GET /kill-switch',
    ]);
  });

  it('writes the state file when the API refuses connections, keeping the event history', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    await writeFile(stateFile, JSON.stringify(seeded));
    const at = new Date('2025-11-25T02:00:00.000Z');
    const client = new HttpFileKillSwitch({ apiUrl: await refusedUrl(), timeoutMs: 2000, stateFile, now: () => at });

    const reading = await client.activate('restore app-crash', { run: 'r1', scenario: 'app-crash' });

    expect(reading.via).toBe('file');
    expect(reading.state).toBe('ON');
    expect(reading.fallback).toMatch(/refused/i);
    const written = await readState(stateFile);
    expect(written.state).toBe('ON');
    expect(written.last_updated).toBe(at.toISOString());
    expect(written.events).toHaveLength(4);
    expect(written.events.slice(0, 3)).toEqual(seeded.events);
    expect(written.events.at(-1)).toEqual({
      trigger: KILL_SWITCH_FILE_TRIGGER,
      reason: 'restore app-crash',
      timestamp: at.toISOString(),
      metadata: { run: 'r1', scenario: 'app-crash' },
      activated: true,
    });
    expect(reading.file).toEqual(written);
  });

  it('writes the state file when the API does not answer within the timeout', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    // Accepts the request and never answers: a hung target.
    const hung = await listen(() => {});
    const client = new HttpFileKillSwitch({ apiUrl: hung.url, timeoutMs: 300, stateFile });

    const started = performance.now();
    const reading = await client.activate('target hung');
    const elapsed = performance.now() - started;

    expect(reading).toMatchObject({ via: 'file', state: 'ON' });
    expect(reading.fallback).toMatch(/no answer within 300 ms/);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
    expect((await readState(stateFile)).state).toBe('ON');
  });

  it('writes the state file when the API answers 5xx', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    const failing = await listen((_req, res) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'exchange: timeout' }));
    });
    const client = new HttpFileKillSwitch({ apiUrl: failing.url, timeoutMs: 2000, stateFile });

    const reading = await client.activate('venue down');

    expect(reading).toMatchObject({ via: 'file', state: 'ON' });
    expect(reading.fallback).toMatch(/answered 502/);
  });

  it('refuses a 4xx from the API as a TARGET_ERROR naming the status and body, leaving the file alone', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    await writeFile(stateFile, JSON.stringify(seeded));
    const trader = await fakeTrader(seeded);
    const client = new HttpFileKillSwitch({ apiUrl: trader.url, timeoutMs: 2000, stateFile });

    const err = await client.activate('').catch((e: unknown) => e);

    expect(err).toBeInstanceOf(LifeboatError);
    expect(err).toMatchObject({ code: 'TARGET_ERROR' });
    expect((err as LifeboatError).message).toMatch(/answered 400/);
    expect((err as LifeboatError).message).toMatch(/required property 'reason'/);
    expect(await readState(stateFile)).toEqual(seeded);
  });

  it('deactivates through the state file with state OFF when no API is configured', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    await writeFile(stateFile, JSON.stringify({ ...seeded, state: 'ON' }));
    const client = new HttpFileKillSwitch({ timeoutMs: 2000, stateFile });

    const reading = await client.deactivate('reconciliation passed', { operator: 'sofia' });

    expect(reading).toMatchObject({ via: 'file', state: 'OFF' });
    expect(reading.fallback).toMatch(/no API/);
    const written = await readState(stateFile);
    expect(written.state).toBe('OFF');
    expect(written.events).toHaveLength(4);
    expect(written.events.at(-1)).toMatchObject({ activated: false, metadata: { operator: 'sofia' } });
  });

  it('reads a missing state file as ON', async () => {
    const dir = await tempDir();
    const client = new HttpFileKillSwitch({
      apiUrl: await refusedUrl(),
      timeoutMs: 2000,
      stateFile: join(dir, 'kill_switch_state.json'),
    });

    const reading = await client.status();

    expect(reading).toMatchObject({ state: 'ON', file: null, via: 'file' });
    expect(reading.fallback).toMatch(/refused/i);
  });

  it('reads a garbage state file as ON, and keeps its valid events when activating over it', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    await writeFile(
      stateFile,
      JSON.stringify({ state: 'MAYBE', events: [event(1, true), { junk: true }, event(2, false)] }),
    );
    const client = new HttpFileKillSwitch({ timeoutMs: 2000, stateFile });

    expect(await client.status()).toMatchObject({ state: 'ON', file: null, via: 'file' });
    await writeFile(stateFile, '{"state": "OFF", "events": [');
    expect(await client.status()).toMatchObject({ state: 'ON', file: null, via: 'file' });

    await writeFile(
      stateFile,
      JSON.stringify({ state: 'MAYBE', events: [event(1, true), { junk: true }, event(2, false)] }),
    );
    const reading = await client.activate('restore');
    expect(reading.file?.events.map((e) => e.reason)).toEqual(['episode 1', 'episode 2', 'restore']);
  });

  it('writes the file atomically into a directory it creates, leaving no temp files behind', async () => {
    const dir = await tempDir();
    const stateDir = join(dir, 'restored', 'sofia');
    const stateFile = join(stateDir, 'kill_switch_state.json');
    const client = new HttpFileKillSwitch({ timeoutMs: 2000, stateFile });

    for (let i = 0; i < 5; i++) await client.activate(`halt ${i}`);

    expect(await readdir(stateDir)).toEqual(['kill_switch_state.json']);
    const written = await readState(stateFile);
    expect(written.events).toHaveLength(5);
    expect(await client.status()).toMatchObject({ state: 'ON', via: 'file', file: written });
  });

  it('keeps at most the last 100 events', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    const events = Array.from({ length: 100 }, (_, i) => event(i, i % 2 === 0));
    await writeFile(stateFile, JSON.stringify({ state: 'OFF', events, last_updated: '2025-01-01T00:00:00.000Z' }));
    const client = new HttpFileKillSwitch({ timeoutMs: 2000, stateFile });

    await client.activate('one more');

    const written = await readState(stateFile);
    expect(written.events).toHaveLength(100);
    expect(written.events[0]).toEqual(events[1]);
    expect(written.events.at(-1)).toMatchObject({ reason: 'one more', activated: true });
  });

  it('sends credentials written in the API URL as Basic auth, and never shows them', async () => {
    const dir = await tempDir();
    const stateFile = join(dir, 'kill_switch_state.json');
    const trader = await fakeTrader(seeded);
    const withCredentials = new URL(trader.url);
    withCredentials.username = 'ops';
    withCredentials.password = 'hunter2';
    const client = new HttpFileKillSwitch({ apiUrl: withCredentials.toString(), timeoutMs: 2000, stateFile });

    expect(await client.activate('halt')).toMatchObject({ via: 'api', state: 'ON' });
    expect(trader.requests[0]?.authorization).toBe(`Basic ${Buffer.from('ops:hunter2').toString('base64')}`);

    await trader.close();
    const reading = await client.activate('halt again');
    expect(reading.via).toBe('file');
    expect(reading.fallback).toMatch(/refused/i);
    expect(reading.fallback).not.toContain('hunter2');
  });

  it('is built for a target from its root, its state file name and its API settings', async () => {
    const dir = await tempDir();
    const trader = await fakeTrader(seeded);
    const config = TargetConfig.parse({ root: dir, api: { url: trader.url, timeoutMs: 500 } });
    const client = createKillSwitch({ name: 'demo', config, root: dir });

    expect(client.stateFile).toBe(join(dir, 'kill_switch_state.json'));
    expect(await client.status()).toMatchObject({ via: 'api', state: 'OFF' });
    await trader.close();
    expect(await client.activate('target gone')).toMatchObject({ via: 'file', state: 'ON' });
    expect((await readState(join(dir, 'kill_switch_state.json'))).state).toBe('ON');
  });
});
