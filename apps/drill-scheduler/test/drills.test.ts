import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DrillReport } from '@lifeboat/domain';
import { type CliRun, checksums, freePort, getTestStack, lifeboat, type TestStack } from '@lifeboat/testkit';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Whole drills with real processes: minutes on a loaded 2-core machine, not seconds.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

/** Debian's chromium (installed by .ci/run); GitHub's runners name theirs. */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

function reportOf(run: CliRun): DrillReport {
  try {
    return JSON.parse(run.stdout) as DrillReport;
  } catch {
    throw new Error(`not a JSON report (exit ${run.code}): ${run.stdout.slice(0, 500)} ${run.stderr.slice(-3000)}`);
  }
}

/** A webhook receiver on a free port, keeping every JSON body posted to it. */
async function webhook(): Promise<{ url: string; received: Array<Record<string, string>>; close: () => void }> {
  const received: Array<Record<string, string>> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => server.close() };
}

const dirs: string[] = [];
let stack: TestStack;
beforeAll(async () => {
  stack = await getTestStack();
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A demo target trading live, with one backup; stopped after the describe block. */
function liveDemo(engine: 'sqlite' | 'postgres') {
  const demo = { dir: '', config: '', databaseUrl: undefined as string | undefined };
  beforeAll(async () => {
    demo.dir = await mkdtemp(join(tmpdir(), `lifeboat-drills-${engine}-`));
    dirs.push(demo.dir);
    const port = await freePort();
    const exchangePort = await freePort();
    demo.databaseUrl = engine === 'postgres' ? await stack.postgres.createDatabase('drills') : undefined;
    const init = await lifeboat([
      'demo',
      'init',
      join(demo.dir, 'demo'),
      '--size',
      '512KiB',
      '--db',
      engine,
      '--port',
      String(port),
      '--exchange-port',
      String(exchangePort),
      ...(demo.databaseUrl ? ['--database-url', demo.databaseUrl] : []),
      '--json',
    ]);
    expect(init.code, init.stderr).toBe(0);
    demo.config = JSON.parse(init.stdout).config;
    const start = await lifeboat(
      ['demo', 'start', '--config', demo.config, '--detach', '--exchange-port', String(exchangePort)],
      env(),
    );
    expect(start.code, start.stderr).toBe(0);
    const backup = await lifeboat(['backup', '--config', demo.config, '--json'], env());
    expect(backup.code, backup.stderr).toBe(0);
  });
  afterAll(async () => {
    await lifeboat(['demo', 'stop', '--config', demo.config]);
    if (demo.databaseUrl) await stack.postgres.dropDatabase(demo.databaseUrl);
  });
  const env = () => (demo.databaseUrl ? { DATABASE_URL: demo.databaseUrl } : {});
  return { demo, env };
}

describe('drills on a live SQLite demo', () => {
  const { demo, env } = liveDemo('sqlite');

  it('full-simulation runs every drill of the catalog with measured numbers, and writes the HTML report', async () => {
    const html = join(demo.dir, 'report.html');
    const run = await lifeboat(
      ['drill', 'run', 'full-simulation', '--config', demo.config, '--json', '--html', html],
      env(),
    );
    const report = reportOf(run);
    const why = JSON.stringify(
      (report.drills ?? []).filter((d) => d.verdict !== 'PASS').map((d) => ({ drill: d.drill, failure: d.failure })),
    );
    expect(report.verdict, why).toBe('PASS');
    expect(run.code).toBe(0);
    const byName = Object.fromEntries((report.drills ?? []).map((d) => [d.drill, d]));
    expect(Object.keys(byName).sort()).toEqual([
      'backup-verify',
      'cold-restore',
      'database-restore',
      'kill-switch',
      'reconciliation',
      'rpo-under-load',
      'shadow-failover',
      'vendor-connectivity-loss',
    ]);
    // Every drill held to an RTO measured one within its target; the restores measured an RPO.
    for (const name of [
      'kill-switch',
      'shadow-failover',
      'database-restore',
      'cold-restore',
      'vendor-connectivity-loss',
    ]) {
      const d = byName[name] as DrillReport;
      expect(d.measured.rto_seconds, name).toBeGreaterThan(0);
      expect(d.measured.rto_seconds as number, name).toBeLessThanOrEqual(d.targets.rto_seconds as number);
    }
    for (const name of ['backup-verify', 'database-restore', 'cold-restore']) {
      const d = byName[name] as DrillReport;
      expect(d.measured.rpo_seconds, name).toBeGreaterThanOrEqual(0);
      expect(d.targets.rpo_seconds, name).toBe(60);
    }
    expect(byName['cold-restore']?.measured.rpo.auditLogs).toBeGreaterThanOrEqual(0);
    // The rebuilt host ran the target in shadow mode before it was ready to trade.
    const cold = byName['cold-restore'] as DrillReport;
    expect(cold.measured.rto_shadow_seconds).toBeGreaterThan(0);
    expect(cold.measured.rto_shadow_seconds as number).toBeLessThan(cold.measured.rto_seconds as number);
    // Copies read the venue through the drill's proxy, which let no change through to it.
    const proxied = (byName['shadow-failover'] as DrillReport).evidence.venueProxy as { forwarded: number };
    expect(proxied.forwarded).toBeGreaterThan(0);
    expect(byName['cold-restore']?.measured.rpo.reports).toBeGreaterThanOrEqual(0);
    // The venue cut from a copy engages its kill switch, and reconciliation fails closed.
    const vendor = byName['vendor-connectivity-loss'] as DrillReport;
    expect(vendor.evidence.killSwitchEvent).toMatchObject({ trigger: 'venue_unreachable' });
    expect((vendor.evidence.reconciliation as { ready: boolean }).ready).toBe(false);

    // Stored, and listed.
    const stored = join(demo.dir, 'demo', 'store', 'demo', 'drills');
    expect(readdirSync(stored).filter((f) => f.endsWith('.json'))).toHaveLength(9);
    const list = await lifeboat(['drill', 'list', '--config', demo.config, '--json']);
    expect(JSON.parse(list.stdout).drills.map((d: { drill: string }) => d.drill)).toContain('cold-restore');
    const page = join(demo.dir, 'again.html');
    const again = await lifeboat(['drill', 'report', report.id, '--config', demo.config, '--json', '--html', page]);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ id: report.id, verdict: 'PASS' });
    expect(readFileSync(page, 'utf8')).toContain('<svg id="timeline"');
    const missing = await lifeboat(['drill', 'report', '20200101T000000Z-kill-switch', '--config', demo.config]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no drill report 20200101T000000Z-kill-switch of demo');
    // Sandboxes and copies are gone.
    for (const d of report.drills ?? []) {
      const sandbox = (d.evidence.sandbox as { root?: string } | undefined)?.root;
      if (sandbox) expect(existsSync(sandbox), sandbox).toBe(false);
    }

    // The page renders in a real browser with the runbook's table and the timeline.
    expect(existsSync(html)).toBe(true);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(`file://${html}`);
      const rows = await page.locator('#runbook-table tbody tr').allInnerTexts();
      expect(rows.map((r) => r.split('\t')[0])).toEqual([
        'Kill Switch Activation',
        'Shadow Mode Recovery',
        'Database Restore',
        'Complete Rebuild',
        'Vendor Connectivity Loss',
        'Multi-Region Failover',
      ]);
      // The demo keeps its backups in one place: there is no failover to run.
      for (const r of rows.slice(0, -1)) expect(r).toContain('PASS');
      expect(rows.at(-1)).toContain('not run yet');
      expect(await page.locator('#timeline rect.bar').count()).toBe(8);
      const box = await page.locator('#timeline').boundingBox();
      expect(box?.width).toBeGreaterThan(300);
      expect(await page.locator('#history circle').count()).toBeGreaterThanOrEqual(5);
    } finally {
      await browser.close();
    }
  });

  it('rpo-under-load: a copy trading 100 orders/s, the host lost at a random moment, at most 5 s of orders lost and no gap', async () => {
    const run = await lifeboat(['drill', 'run', 'rpo-under-load', '--config', demo.config, '--json'], env());
    const report = reportOf(run);
    expect(report.verdict, report.failure ?? '').toBe('PASS');
    expect(run.code).toBe(0);
    expect(report.measured.rpo_seconds).not.toBeNull();
    expect(report.measured.rpo_seconds as number).toBeGreaterThanOrEqual(0);
    expect(report.measured.rpo_seconds as number).toBeLessThanOrEqual(5);
    // It traded for real, on a venue of its own, and the kept orders are a prefix of those written.
    const e = report.evidence as {
      ordersWrittenBeforeDisaster: number;
      ordersTheVenueAcknowledged: number;
      ordersKept: number;
      ordersLost: number;
    };
    expect(e.ordersWrittenBeforeDisaster).toBeGreaterThan(300);
    expect(e.ordersTheVenueAcknowledged).toBeGreaterThan(300);
    expect(e.ordersKept).toBeGreaterThan(0);
    expect(e.ordersKept + e.ordersLost).toBe(e.ordersWrittenBeforeDisaster);
    expect(report.steps.find((s) => s.name === 'restore-latest')?.detail).toMatch(/a prefix, no gap/);
    // The drill's stream is removed with its sandbox.
    const streams = join(demo.dir, 'demo', 'store', 'demo', 'drill-streams');
    const left = existsSync(streams)
      ? readdirSync(streams, { recursive: true, withFileTypes: true }).filter((d) => d.isFile())
      : [];
    expect(left).toEqual([]);
  });

  it('a drill over a backup with one flipped byte fails naming the step, and production is untouched', async () => {
    await lifeboat(['demo', 'stop', '--only', 'paper-trader', '--config', demo.config]);
    const backups = join(demo.dir, 'demo', 'store', 'demo', 'backups');
    const newest = readdirSync(backups).sort().at(-1) as string;
    const archive = readdirSync(join(backups, newest)).find((f) => f.startsWith('archive')) as string;
    const file = join(backups, newest, archive);
    const fh = await open(file, 'r+');
    const at = Math.floor(statSync(file).size / 2);
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, at);
    await fh.write(Buffer.from([(byte[0] as number) ^ 0xff]), 0, 1, at);
    await fh.close();

    const target = join(demo.dir, 'demo', 'target');
    const before = checksums(target);
    const hook = await webhook();
    const run = await lifeboat(['drill', 'run', 'database-restore', '--config', demo.config, '--json'], {
      ...env(),
      LIFEBOAT_ALERT_WEBHOOK_URL: hook.url,
    }).finally(() => hook.close());
    const report = reportOf(run);
    // The failure is told to the webhook, Slack-style.
    expect(hook.received).toHaveLength(1);
    expect(hook.received[0]).toMatchObject({ kind: 'drill_failed', drill: 'database-restore', target: 'demo' });
    expect(hook.received[0]?.text).toContain('database-restore of demo FAILED: restore:');
    expect(run.code).toBe(1);
    expect(report.verdict).toBe('FAIL');
    expect(report.failure).toMatch(/^restore: .*fetch-and-verify/);
    expect(report.steps.find((s) => s.status === 'FAILED')?.name).toBe('restore');
    expect(report.evidence.backupId).toBe(newest);
    expect(checksums(target)).toEqual(before);
  });
});

describe('restore drills on a live PostgreSQL demo', () => {
  const { demo, env } = liveDemo('postgres');

  it('restores into scratch databases, measures, and drops them', async () => {
    for (const drill of ['database-restore', 'cold-restore']) {
      const run = await lifeboat(['drill', 'run', drill, '--config', demo.config, '--json'], env());
      const report = reportOf(run);
      expect(report.verdict, `${drill}: ${report.failure}`).toBe('PASS');
      expect(report.measured.rto_seconds).toBeGreaterThan(0);
      expect(report.measured.rpo_seconds).toBeGreaterThanOrEqual(0);
    }
    const client = new pg.Client({ connectionString: demo.databaseUrl });
    await client.connect();
    try {
      const name = new URL(demo.databaseUrl as string).pathname.slice(1);
      const { rows } = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE datname LIKE $1',
        [`${name}_sandbox_%`],
      );
      expect(rows).toEqual([]);
    } finally {
      await client.end();
    }
  });
});

describe('lifeboat drill schedule', () => {
  it('prints the next runs as a JSON array of {drill, at}, sorted by time', async () => {
    const run = await lifeboat(['drill', 'schedule', '--from', '2026-11-26T00:00:00Z', '--count', '30', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const runs = JSON.parse(run.stdout) as Array<{ drill: string; at: string }>;
    expect(runs).toHaveLength(30);
    expect(runs.map((r) => r.at)).toEqual([...runs.map((r) => r.at)].sort());
    expect(runs[0]).toEqual({ drill: 'backup-verify', at: '2026-11-26T01:30:00.000Z' });
    expect(runs.find((r) => r.drill === 'database-restore')?.at).toBe('2026-12-07T03:00:00.000Z');
  });

  it('refuses a bad date', async () => {
    const run = await lifeboat(['drill', 'schedule', '--from', 'next tuesday']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--from: "next tuesday" is not a date');
  });
});
