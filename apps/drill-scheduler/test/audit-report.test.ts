// The annual audit report from a real filesystem store: a year of drill reports, restore
// records, backups in two locations (most of them pruned since, known from the audit trail),
// kill-switch entries in a hash-chained trail, and a third location that does not answer.
// Gathered, built, stored by the annual-audit drill, and its page read in headless Chromium.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, loadConfig, type Runtime, sha256hex } from '@lifeboat/adapters';
import { silentLogger, verificationKey } from '@lifeboat/backup';
import {
  type AuditEntry,
  type AuditReport,
  auditHash,
  compactUtc,
  type DrillName,
  type DrillReport,
  GENESIS_HASH,
  layout,
  type ObjectStore,
} from '@lifeboat/domain';
import { freePort } from '@lifeboat/testkit';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditReportFor, renderAuditReportHtml, runDrill } from '../src/index.js';

/** Debian's chromium (installed by .ci/run); GitHub's runners name theirs. */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  throw new Error(
    `no Chromium at ${CHROMIUM}: the audit report page is checked in a real browser. ` +
      'Install it (apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary.',
  );
}

const DAY = 86_400_000;
const ENV = { ...process.env, LB_AUDIT_TEST_KEY: 'test', LB_AUDIT_TEST_SECRET: 'test-secret' };
const TARGETS: Partial<Record<DrillName, DrillReport['targets']>> = {
  'kill-switch': { rto_seconds: 30, rpo_seconds: null, rpo: {} },
  'shadow-failover': { rto_seconds: 300, rpo_seconds: null, rpo: {} },
  'backup-verify': { rto_seconds: null, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'database-restore': { rto_seconds: 900, rpo_seconds: 60, rpo: { orderHistory: 60 } },
  'cold-restore': { rto_seconds: 3600, rpo_seconds: 60, rpo: { orderHistory: 60, auditLogs: 300, reports: 86_400 } },
  'vendor-connectivity-loss': { rto_seconds: 30, rpo_seconds: null, rpo: {} },
};

let dir: string;
let runtime: Runtime;
let store: ObjectStore;

function drill(
  name: DrillName,
  at: Date,
  m: { rto?: number; rpo?: number; failure?: string; nested?: DrillReport[] } = {},
): DrillReport {
  return {
    format: 'lifeboat.drill-report/v1',
    id: `${compactUtc(at)}-${name}`,
    drill: name,
    target: 'demo',
    title: name,
    scenario: name,
    hypothesis: '',
    started_at: at.toISOString(),
    finished_at: new Date(at.getTime() + 60_000).toISOString(),
    verdict: m.failure ? 'FAIL' : 'PASS',
    failure: m.failure ?? null,
    measured: {
      rto_seconds: m.rto ?? null,
      rpo_seconds: m.rpo ?? null,
      rpo: m.rpo === undefined ? {} : { orderHistory: m.rpo },
    },
    targets: TARGETS[name] ?? { rto_seconds: null, rpo_seconds: null, rpo: {} },
    steps: [],
    evidence: {},
    ...(m.nested ? { drills: m.nested } : {}),
  };
}

const json = (v: unknown) => Buffer.from(`${JSON.stringify(v, null, 1)}\n`);
const days2026 = () => Array.from({ length: 365 }, (_, i) => new Date(Date.UTC(2026, 0, 1) + i * DAY));
const at = (d: Date, h: number, mi: number, s: number) => new Date(d.getTime() + ((h * 60 + mi) * 60 + s) * 1000);
const backupId = (t: Date) => `${compactUtc(t)}-full-0a0a`;

function manifest(id: string, createdAt: Date) {
  return {
    format: 'lifeboat.manifest/v1',
    backupId: id,
    target: 'demo',
    kind: 'full',
    reason: 'scheduled',
    requestedBy: 'test',
    createdAt: createdAt.toISOString(),
    host: 'test',
    tool: { name: 'lifeboat', version: '0.1.0' },
    consistency: { method: 'none', appendOnlyOffsets: {} },
    entries: [],
    omitted: [],
    warnings: [],
    database: null,
    archive: {
      key: layout.archive('demo', id, false),
      compression: 'gzip',
      encryption: null,
      size: 0,
      sha256: '0'.repeat(64),
    },
  };
}

/** A committed backup in a location, with a quick verification unless `verified` is null. */
async function commitBackup(location: ObjectStore, t: Date, verified: boolean | null): Promise<void> {
  const id = backupId(t);
  await location.put(layout.manifest('demo', id), json(manifest(id, t)));
  if (verified !== null) {
    const vAt = new Date(t.getTime() + 60_000);
    await location.put(
      verificationKey('demo', id, vAt, 'quick', verified),
      json({
        backupId: id,
        level: 'quick',
        ok: verified,
        at: vAt.toISOString(),
        durationMs: 5,
        problems: [],
        checks: [],
      }),
    );
  }
}

/** A hash-chained trail, written entry by entry as the store trail writes them. */
async function writeTrail(events: Array<Omit<AuditEntry, 'seq' | 'prevHash' | 'hash'>>): Promise<void> {
  let prevHash = GENESIS_HASH;
  const sorted = [...events].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  for (const [i, e] of sorted.entries()) {
    const body = { seq: i + 1, ...e, prevHash };
    const entry = { ...body, hash: auditHash(body, sha256hex) };
    await store.put(layout.auditEntry(entry.seq), Buffer.from(JSON.stringify(entry)));
    prevHash = entry.hash;
  }
  await store.put(layout.auditHead, Buffer.from(JSON.stringify({ seq: sorted.length, hash: prevHash })));
}

/**
 * The year 2026 of target demo (backup-verify set to Mondays 01:30 in lifeboat.yaml,
 * multi-region-failover off):
 * - kill-switch every Monday 02:00:07 (RTO 12 s), shadow-failover every Wednesday (90 s),
 *   reconciliation every Friday, backup-verify every Monday 01:30:07 (RPO 20 s);
 * - database-restore every first Monday 03:00:07 (RTO 400 s, RPO 15 s), 06-01 FAIL (RTO 1000 s);
 * - cold-restore every third Monday 03:00:07 (RTO 1200 s), none on 12-21;
 * - full-simulation on the first Mondays of Jan, Apr, Jul, Oct at 04:00 with its seven drills
 *   (kill-switch 14 s, shadow-failover 95 s, backup-verify RPO 25 s, database-restore 500 s,
 *   cold-restore 1300 s, vendor-connectivity-loss 6 s), each also stored on its own;
 * - a report of 03-01 that is not JSON.
 */
async function writeDrills(): Promise<void> {
  const reports: DrillReport[] = [];
  const mondays = days2026().filter((d) => d.getUTCDay() === 1);
  const nth = (n: number) =>
    Array.from({ length: 12 }, (_, mo) => mondays.filter((d) => d.getUTCMonth() === mo)[n - 1] as Date);
  for (const d of days2026()) {
    if (d.getUTCDay() === 1) {
      reports.push(
        drill('kill-switch', at(d, 2, 0, 7), { rto: 12 }),
        drill('backup-verify', at(d, 1, 30, 7), { rpo: 20 }),
      );
    }
    if (d.getUTCDay() === 3) reports.push(drill('shadow-failover', at(d, 2, 0, 7), { rto: 90 }));
    if (d.getUTCDay() === 5) reports.push(drill('reconciliation', at(d, 2, 0, 7)));
  }
  for (const d of nth(1)) {
    reports.push(
      d.getUTCMonth() === 5
        ? drill('database-restore', at(d, 3, 0, 7), {
            rto: 1000,
            rpo: 15,
            failure: 'RTO 1000 s exceeds the target 900 s',
          })
        : drill('database-restore', at(d, 3, 0, 7), { rto: 400, rpo: 15 }),
    );
  }
  for (const d of nth(3))
    if (d.getUTCMonth() !== 11) reports.push(drill('cold-restore', at(d, 3, 0, 7), { rto: 1200, rpo: 30 }));
  for (const mo of [0, 3, 6, 9]) {
    const d = nth(1)[mo] as Date;
    const nested = [
      drill('backup-verify', at(d, 4, 0, 1), { rpo: 25 }),
      drill('database-restore', at(d, 4, 1, 0), { rto: 500, rpo: 15 }),
      drill('cold-restore', at(d, 4, 10, 0), { rto: 1300, rpo: 30 }),
      drill('reconciliation', at(d, 4, 30, 0)),
      drill('kill-switch', at(d, 4, 31, 0), { rto: 14 }),
      drill('shadow-failover', at(d, 4, 32, 0), { rto: 95 }),
      drill('vendor-connectivity-loss', at(d, 4, 35, 0), { rto: 6 }),
    ];
    reports.push(drill('full-simulation', at(d, 4, 0, 0), { nested }), ...nested);
  }
  for (const r of reports) await store.put(layout.drillReport('demo', r.id), json(r));
  await store.put(layout.drillReport('demo', '20260301T000000Z-kill-switch'), Buffer.from('{"format": "lifeb'));
}

/**
 * primary: a backup every day at 02:00 but 04-11 to 04-13; December's still listed (12-15 failed
 * verification, 12-31 never verified), the rest pruned and known from `backup.completed`.
 * offsite: December's copies listed, those of March to November known from `replicate.completed`.
 * The trail also holds kill-switch changes of demo (and one of another target, one of 2025).
 */
async function writeBackupsAndTrail(): Promise<void> {
  const offsite = runtime.at('offsite').store;
  const events: Array<Omit<AuditEntry, 'seq' | 'prevHash' | 'hash'>> = [];
  for (const d of days2026()) {
    const day = d.toISOString().slice(0, 10);
    const t = at(d, 2, 0, 0);
    const done = new Date(t.getTime() + 120_000).toISOString();
    if (d.getUTCMonth() === 11) {
      await commitBackup(store, t, day === '2026-12-15' ? false : day === '2026-12-31' ? null : true);
      await commitBackup(offsite, t, true);
    } else if (!['2026-04-11', '2026-04-12', '2026-04-13'].includes(day)) {
      events.push({
        at: done,
        actor: 'backup-worker',
        action: 'backup.completed',
        target: 'demo',
        outcome: 'ok',
        details: { backupId: backupId(t) },
      });
      if (d.getUTCMonth() >= 2) {
        events.push({
          at: new Date(t.getTime() + 300_000).toISOString(),
          actor: 'backup-worker',
          action: 'replicate.completed',
          target: 'demo',
          outcome: 'ok',
          details: { backupId: backupId(t), location: 'offsite', outcome: 'copied' },
        });
      }
    }
  }
  const ks = (when: string, actor: string, action: string, outcome: 'ok' | 'refused', target = 'demo') => ({
    at: when,
    actor,
    action,
    target,
    outcome,
    details: { reason: `${action} by ${actor}` },
  });
  events.push(
    ks('2025-12-20T09:00:00.000Z', 'cli:alice', 'kill_switch.activate', 'ok'),
    ks('2026-03-02T09:00:00.000Z', 'cli:alice', 'kill_switch.activate', 'ok'),
    ks('2026-03-02T10:01:00.000Z', 'bob', 'console.kill_switch.deactivate', 'refused'),
    ks('2026-03-02T10:05:00.000Z', 'carol', 'console.kill_switch.deactivate', 'ok'),
    ks('2026-05-05T10:05:00.000Z', 'cli:erin', 'kill_switch.activate', 'ok', 'other'),
  );
  await writeTrail(events);
}

async function writeRestores(): Promise<void> {
  const record = (startedAt: string, scenario: string, kind: string, toReadyMs: number | null) => ({
    target: 'demo',
    scenario,
    destination: { kind, root: '/tmp/x', database: null },
    backupId: null,
    dryRun: false,
    outcome: 'COMPLETED',
    failedStep: null,
    error: null,
    steps: [],
    startedAt,
    endedAt: startedAt,
    rto: { targetMs: 900_000, toHealthyShadowMs: null, toReadyMs, withinTarget: true },
    readyToTrade: toReadyMs !== null,
    killSwitch: 'ON',
    movedAside: [],
    reconciliation: null,
    fencingToken: null,
    requestedBy: 'test',
    reason: 'test',
  });
  await store.put(
    layout.restoreRecord('demo', '20260601T030017Z', 'db-corruption'),
    json(record('2026-06-01T03:00:17.000Z', 'db-corruption', 'sandbox', null)),
  );
  await store.put(
    layout.restoreRecord('demo', '20260903T080000Z', 'app-crash'),
    json(record('2026-09-03T08:00:00.000Z', 'app-crash', 'production', 180_000)),
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-audit-report-'));
  const closed = await freePort();
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    [
      'store: { type: fs, path: store }',
      'locations:',
      '  offsite: { type: fs, path: offsite }',
      `  dr-site: { type: s3, endpoint: "http://127.0.0.1:${closed}", bucket: lifeboat-dr, accessKeyIdEnv: LB_AUDIT_TEST_KEY, secretAccessKeyEnv: LB_AUDIT_TEST_SECRET }`,
      'targets:',
      '  demo: { root: target }',
      'drills:',
      '  schedule:',
      "    backup-verify: '30 1 * * MON'",
      '    multi-region-failover: off',
      '    rpo-under-load: off',
      '',
    ].join('\n'),
  );
  runtime = createRuntime(await loadConfig(join(dir, 'lifeboat.yaml')), ENV);
  store = runtime.store;
  await writeDrills();
  await writeBackupsAndTrail();
  await writeRestores();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the annual audit report from a store', () => {
  let report: AuditReport;
  beforeAll(async () => {
    report = await auditReportFor({ runtime, target: 'demo', year: 2026, now: new Date('2027-01-02T00:00:00.000Z') });
  });

  it('counts each drill against its schedule, full-simulation drills included', () => {
    expect(report.drills.map((d) => [d.drill, d.schedule, d.scheduled, d.runs, d.passed, d.failed, d.missed])).toEqual([
      // 52 Mondays + 4 in full-simulation.
      ['kill-switch', '0 2 * * MON', 52, 56, 56, 0, 0],
      ['shadow-failover', '0 2 * * WED', 52, 56, 56, 0, 0],
      ['reconciliation', '0 2 * * FRI', 52, 56, 56, 0, 0],
      // lifeboat.yaml's schedule: Mondays.
      ['backup-verify', '30 1 * * MON', 52, 56, 56, 0, 0],
      ['database-restore', '0 3 * * MON#1', 12, 16, 15, 1, 0],
      // 11 third Mondays (none on 12-21) + 4.
      ['cold-restore', '0 3 * * MON#3', 12, 15, 15, 0, 1],
      ['full-simulation', '0 4 * JAN,APR,JUL,OCT MON#1', 4, 4, 4, 0, 0],
      ['vendor-connectivity-loss', '0 5 * JUL MON#1', 1, 4, 4, 0, 0],
      ['multi-region-failover', null, 0, 0, 0, 0, 0],
      ['rpo-under-load', null, 0, 0, 0, 0, 0],
    ]);
    const ks = report.drills[0];
    // RTOs 52 × 12 s and 4 × 14 s: the 28th and 29th of 56 are 12.
    expect(ks?.rto).toEqual({ measured: 56, worst: 14, median: 12, target: 30 });
    // RTOs 11 × 400, 4 × 500, 1000: the 8th and 9th of 16 are 400.
    expect(report.drills[4]?.rto).toEqual({ measured: 16, worst: 1000, median: 400, target: 900 });
    expect(report.drills[4]?.targetsMet).toBe(15);
    expect(report.summary).toMatchObject({ scheduled: 237, missed: 1, runs: 263, passed: 262, failed: 1 });
  });

  it('follows the failed database-restore to the next run', () => {
    expect(report.failures).toEqual([
      {
        kind: 'drill',
        name: 'database-restore',
        id: '20260601T030007Z-database-restore',
        at: '2026-06-01T03:00:07.000Z',
        why: 'RTO 1000 s exceeds the target 900 s',
        partOf: null,
        destination: null,
        // 35 days later, the first Monday of July.
        next: {
          id: '20260706T030007Z-database-restore',
          at: '2026-07-06T03:00:07.000Z',
          outcome: 'PASS',
          afterSeconds: 3_024_000,
        },
        nextPass: { id: '20260706T030007Z-database-restore', at: '2026-07-06T03:00:07.000Z', afterSeconds: 3_024_000 },
      },
    ]);
  });

  it('gives each location its backups, pruned ones from the audit trail, and the one that does not answer', () => {
    const [primary, offsite, drSite] = report.locations;
    // 365 days less 3; December's 31 listed, the 331 before pruned.
    expect(primary).toMatchObject({
      location: 'primary',
      primary: true,
      backups: 362,
      pruned: 331,
      verified: 29,
      failedVerification: 1,
      unverified: 1,
      daysCovered: 362,
      daysWithout: ['2026-04-11', '2026-04-12', '2026-04-13'],
      longestGap: { from: '2026-04-10T02:00:00.000Z', to: '2026-04-14T02:00:00.000Z', seconds: 345_600 },
    });
    // March to November (275 days) less the same 3 from the trail, December's 31 listed.
    expect(offsite).toMatchObject({
      location: 'offsite',
      primary: false,
      backups: 303,
      pruned: 272,
      verified: 31,
      longestGap: { from: '2026-01-01T00:00:00.000Z', to: '2026-03-01T02:00:00.000Z', seconds: 5_104_800 },
    });
    expect(drSite).toMatchObject({ location: 'dr-site', reachable: false, backups: null });
    expect(drSite?.problem).toBeTruthy();
  });

  it('reads the restores, the kill-switch entries of the target and the intact trail', () => {
    expect(report.restores).toMatchObject({
      count: 2,
      byOutcome: { COMPLETED: 2 },
      byDestination: { production: 1, sandbox: 1 },
      toReady: { measured: 1, worst: 180, median: 180 },
    });
    expect(report.killSwitch.byAction).toEqual({
      'kill_switch.activate': { ok: 1, refused: 0, failed: 0 },
      'console.kill_switch.deactivate': { ok: 1, refused: 1, failed: 0 },
    });
    // 331 backups + 272 copies + 5 kill-switch entries.
    expect(report.auditChain).toMatchObject({ ok: true, entries: 608, firstBroken: null, catalog: null });
  });

  it('finds the missed slot, the two gaps, the silent location and the unreadable report', () => {
    expect(report.verdict).toBe('FINDINGS');
    expect(report.findings.map((f) => f.kind)).toEqual([
      'drill-missed-runs',
      'backup-gap',
      'backup-gap',
      'location-unreachable',
      'unreadable-record',
    ]);
    expect(report.findings[0]?.text).toBe(
      'cold-restore missed 1 of its 12 scheduled runs (the first on 2026-12-21T03:00:00.000Z).',
    );
    expect(report.findings[2]?.text).toBe(
      'Location offsite went 59.1 days without a backup (2026-01-01T00:00:00.000Z to 2026-03-01T02:00:00.000Z); at most 2 days are allowed.',
    );
    expect(report.findings[4]?.text).toBe(
      '1 record of the period could not be read: demo/drills/20260301T000000Z-kill-switch.json (not JSON).',
    );
  });

  it('renders a page Chromium shows with a row per drill, the locations and the findings, loading nothing', async () => {
    const page = join(dir, 'audit-2026.html');
    await writeFile(page, renderAuditReportHtml(report));
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const tab = await browser.newPage();
      const requested: string[] = [];
      tab.on('request', (r) => requested.push(r.url()));
      await tab.goto(`file://${page}`);
      expect(requested).toEqual([`file://${page}`]);
      expect(await tab.locator('#verdict').textContent()).toBe('FINDINGS');
      const cells = async (drill: string) =>
        (await tab.locator(`#drills-table tr[data-drill="${drill}"] td`).allInnerTexts()).map((t) => t.trim());
      expect(await tab.locator('#drills-table tbody tr').count()).toBe(10);
      expect(await cells('kill-switch')).toEqual([
        'Kill Switch Activation',
        'kill-switch',
        '0 2 * * MON',
        '52',
        '56 (4 in full-simulation)',
        '0',
        '56',
        '0',
        '56 of 56',
        '14s / 12s (target 30s)',
        '—',
        'PASS 2026-12-28 02:00:07Z',
      ]);
      expect((await cells('database-restore')).slice(3, 11)).toEqual([
        '12',
        '16 (4 in full-simulation)',
        '0',
        '15',
        '1',
        '15 of 16',
        '16m 40s / 6m 40s (target 15m 00s)',
        '15s / 15s (target 1m 00s)',
      ]);
      expect((await cells('multi-region-failover')).slice(2, 5)).toEqual(['off', '0', '0']);
      expect(await tab.locator('#findings li').count()).toBe(5);
      expect(await tab.locator('#locations-table tr[data-location="dr-site"]').textContent()).toContain('unreachable');
      const primary = tab.locator('#locations-table tr[data-location="primary"]');
      expect(await primary.locator('svg.coverage rect').count()).toBe(365);
      expect(await primary.locator('svg.coverage rect.gap').count()).toBe(3);
      expect((await primary.locator('svg.coverage').boundingBox())?.width).toBe(730);
      expect(await tab.locator('#failures-table tbody tr').textContent()).toContain(
        'PASS 2026-07-06 03:00:07Z, 35d 00h later',
      );
      expect(await tab.locator('#audit-chain').textContent()).toContain('intact: 608 entries');
    } finally {
      await browser.close();
    }
  });
});

describe('the annual-audit drill', () => {
  it('stores the report as JSON and HTML, and fails naming the findings', async () => {
    const now = new Date('2026-12-31T12:00:00.000Z');
    const report = await runDrill(
      { drill: 'annual-audit', target: 'demo', requestedBy: 'test' },
      {
        runtime,
        log: silentLogger,
        alerts: null,
        env: ENV,
        now: () => now,
        jobs: {
          backup: () => Promise.reject(new Error('not used')),
          restore: () => Promise.reject(new Error('not used')),
          reconcile: () => Promise.reject(new Error('not used')),
        },
      },
    );
    expect(report.steps.map((s) => `${s.name} ${s.status}`)).toEqual([
      'gather PASSED',
      'verify-audit-trail PASSED',
      'write-report PASSED',
      'findings FAILED',
    ]);
    expect(report.verdict).toBe('FAIL');
    expect(report.failure).toMatch(/^findings: 5 finding\(s\): cold-restore missed 1 of its 12 scheduled runs/);
    const stored = report.evidence.auditReport as { key: string; html: string; verdict: string; findings: string[] };
    expect(stored.key).toBe('demo/audit-reports/2026/20261231T120000Z.json');
    expect(stored.html).toBe('demo/audit-reports/2026/20261231T120000Z.html');
    const written = JSON.parse(Buffer.from(await store.getBytes(stored.key)).toString('utf8')) as AuditReport;
    expect(written.period).toEqual({
      start: '2026-01-01T00:00:00.000Z',
      end: '2026-12-31T12:00:00.000Z',
      complete: false,
      days: 365,
    });
    expect(written.findings.map((f) => f.text)).toEqual(stored.findings);
    expect(Buffer.from(await store.getBytes(stored.html)).toString('utf8')).toContain('<table id="drills-table">');
    // The drill's own report sits with the others, and the next audit leaves it out.
    expect(await store.head(layout.drillReport('demo', report.id))).toBeTruthy();
    const again = await auditReportFor({
      runtime,
      target: 'demo',
      year: 2026,
      now: new Date('2027-01-02T00:00:00.000Z'),
    });
    expect(again.drills.find((d) => d.drill === 'annual-audit')).toBeUndefined();
    expect(again.summary.runs).toBe(263);
    expect(await readFile(join(dir, 'store', stored.key), 'utf8')).toContain('"format": "lifeboat.audit-report/v1"');
  });
});
