// `lifeboat audit report --year`: the report of a small store as JSON, text and a page, its exit
// code (0 clean, 1 with findings), and a bad --year refused as a usage error.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsObjectStore } from '@lifeboat/adapters';
import { type AuditReport, compactUtc, DRILL_NAMES, type DrillReport, LifeboatError, layout } from '@lifeboat/domain';
import { lifeboat } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditReportCommand, parseYear } from '../src/commands/audit.js';

let dir: string;
let config: string;
let store: FsObjectStore;
const DAY = 86_400_000;
/** The report's instant in the direct calls: the end of February 2026. */
const NOW = new Date('2026-03-01T00:00:00.000Z');

async function run(command: () => Promise<number>): Promise<{ code: number; out: string }> {
  const printed: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    printed.push(`${args.join(' ')}\n`);
  });
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    printed.push(String(chunk));
    return true;
  });
  try {
    return { code: await command(), out: printed.join('') };
  } finally {
    log.mockRestore();
    write.mockRestore();
  }
}

function killSwitch(at: Date, verdict: 'PASS' | 'FAIL' = 'PASS'): DrillReport {
  return {
    format: 'lifeboat.drill-report/v1',
    id: `${compactUtc(at)}-kill-switch`,
    drill: 'kill-switch',
    target: 'demo',
    title: 'Kill switch activation',
    scenario: 'Kill Switch Activation',
    hypothesis: '',
    started_at: at.toISOString(),
    finished_at: at.toISOString(),
    verdict,
    failure: verdict === 'FAIL' ? 'confirm-halt: the target still reports OFF' : null,
    measured: { rto_seconds: verdict === 'PASS' ? 8.5 : null, rpo_seconds: null, rpo: {} },
    targets: { rto_seconds: 30, rpo_seconds: null, rpo: {} },
    steps: [],
    evidence: {},
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-audit-report-'));
  config = join(dir, 'lifeboat.yaml');
  // Only the kill-switch drill is scheduled (every Monday): the report of two months stays small.
  const off = DRILL_NAMES.filter((d) => d !== 'kill-switch').map((d) => `    ${d}: off`);
  await writeFile(
    config,
    [
      'store: { type: fs, path: store }',
      'targets:',
      '  demo: { root: target }',
      'drills:',
      '  schedule:',
      ...off,
      '',
    ].join('\n'),
  );
  store = new FsObjectStore(join(dir, 'store'));
  // The 8 Mondays of January and February 2026 (the 5th to the 23rd of February), at 02:00:09.
  for (let t = Date.UTC(2026, 0, 5, 2, 0, 9); t < NOW.getTime(); t += 7 * DAY) {
    const r = killSwitch(new Date(t));
    await store.put(layout.drillReport('demo', r.id), Buffer.from(JSON.stringify(r)));
  }
  // A backup every other day at 02:00 from 01-01: never two days without one.
  for (let t = Date.UTC(2026, 0, 1, 2); t < NOW.getTime(); t += 2 * DAY) {
    const id = `${compactUtc(new Date(t))}-full-00aa`;
    const manifest = {
      format: 'lifeboat.manifest/v1',
      backupId: id,
      target: 'demo',
      kind: 'full',
      reason: 'scheduled',
      requestedBy: 'test',
      createdAt: new Date(t).toISOString(),
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
    await store.put(layout.manifest('demo', id), Buffer.from(JSON.stringify(manifest)));
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lifeboat audit report', () => {
  it('prints a clean report as JSON and exits 0', async () => {
    const r = await run(() => auditReportCommand({ config, year: '2026', json: true, now: NOW }));
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as AuditReport;
    expect(report.format).toBe('lifeboat.audit-report/v1');
    expect(report.verdict).toBe('CLEAN');
    // 31 + 28 days; 16 backups in January (the 1st, 3rd, … 31st) and 14 in February.
    expect(report.period).toEqual({
      start: '2026-01-01T00:00:00.000Z',
      end: '2026-03-01T00:00:00.000Z',
      complete: false,
      days: 59,
    });
    expect(report.drills.find((d) => d.drill === 'kill-switch')).toMatchObject({
      scheduled: 8,
      runs: 8,
      missed: 0,
      passed: 8,
      targetsMet: 8,
      rto: { measured: 8, worst: 8.5, median: 8.5, target: 30 },
    });
    expect(report.locations).toEqual([
      expect.objectContaining({ location: 'primary', backups: 30, daysCovered: 30, days: 59, unverified: 30 }),
    ]);
  });

  it('prints the summary and writes the page; a failure with no pass after it exits 1', async () => {
    const failed = killSwitch(new Date('2026-02-24T09:00:00.000Z'), 'FAIL');
    await store.put(layout.drillReport('demo', failed.id), Buffer.from(JSON.stringify(failed)));
    const html = join(dir, 'audit.html');
    try {
      const r = await run(() => auditReportCommand({ config, year: '2026', html, now: NOW }));
      expect(r.code).toBe(1);
      const lines = r.out.split('\n');
      expect(lines[0]).toBe('DR audit 2026 of demo: FINDINGS (1 finding)');
      expect(lines).toContain('drills: 9 runs of 8 scheduled (0 missed), 8 passed, 1 failed');
      expect(lines).toContain(
        '  1. kill-switch failed on 2026-02-24T09:00:00.000Z (confirm-halt: the target still reports OFF) and has not passed since.',
      );
      expect(lines).toContain(`page written to ${html}`);
      expect(readFileSync(html, 'utf8')).toContain('<tr data-drill="kill-switch">');
    } finally {
      await store.delete(layout.drillReport('demo', failed.id));
    }
  });

  it('refuses a --year that is not four digits or lies in the future', async () => {
    expect(parseYear('2025', NOW)).toBe(2025);
    expect(() => parseYear('26', NOW)).toThrow('--year must be a year of four digits, such as 2026, not "26"');
    expect(() => parseYear('2027', NOW)).toThrow('--year 2027 is in the future (it is 2026 in UTC)');
    await expect(auditReportCommand({ config, year: 'next', now: NOW })).rejects.toThrow(LifeboatError);
  });

  it('runs as the command: JSON of the year so far, and exit 2 for a bad --year', async () => {
    const bad = await lifeboat(['audit', 'report', '--year', '20x6', '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('lifeboat: --year must be a year of four digits');
    const future = await lifeboat([
      'audit',
      'report',
      '--year',
      String(new Date().getUTCFullYear() + 1),
      '--config',
      config,
    ]);
    expect(future.code).toBe(2);
    expect(future.stderr).toContain('is in the future');

    // Today, the Mondays since February went without a kill-switch drill: findings, exit 1.
    const now = await lifeboat(['audit', 'report', '--year', '2026', '--config', config, '--json']);
    expect(now.code, now.stderr).toBe(1);
    const report = JSON.parse(now.stdout) as AuditReport;
    expect(report.verdict).toBe('FINDINGS');
    expect(report.drills.find((d) => d.drill === 'kill-switch')?.runs).toBe(8);
    expect(report.findings[0]?.kind).toBe('drill-missed-runs');
  });
});
