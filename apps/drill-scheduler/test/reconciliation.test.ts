// The reconciliation drill on a target that trades while it is read. Its books and the venue
// are read at two instants, so a position can differ for the length of one fill. The drill
// asks again after the in-flight window before it calls that a break. A transient difference
// between two live reads cannot be produced on demand, so the reconcile job here is a stand-in
// that answers the reports a real reconciler gives in each case; the drill, its store and its
// report are real.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, loadConfig } from '@lifeboat/adapters';
import { silentLogger } from '@lifeboat/backup';
import type { ReconcileJobResult } from '@lifeboat/domain';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDrill } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-drill-reconciliation-'));
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    [
      'store:',
      '  type: fs',
      '  path: store',
      'targets:',
      '  demo:',
      '    root: target',
      '    exchange: { type: http }',
      '    reconcile: { settings: { inFlightThresholdMs: 100 } }',
      '',
    ].join('\n'),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function answer(verdict: 'PASS' | 'FAIL', kinds: string[], n: number): ReconcileJobResult {
  return {
    target: 'demo',
    report: {
      verdict,
      ready_to_trade: verdict === 'PASS',
      checks: { position_match: kinds.includes('position_mismatch') ? 'FAIL' : 'PASS' },
      discrepancies: kinds.map((kind) => ({ kind })),
      stats: { items_listed: 3 },
    } as never,
    reportKey: `demo/reports/reconciliation/2026112${n}T000000Z-${verdict}.json`,
    sources: { internal: 'books', exchange: 'venue' },
    sourceErrors: {},
    durationMs: 5,
  };
}

async function drillWith(answers: ReconcileJobResult[]) {
  const runtime = createRuntime(await loadConfig(join(dir, 'lifeboat.yaml')));
  const asked: number[] = [];
  const report = await runDrill(
    { drill: 'reconciliation', requestedBy: 'test' },
    {
      runtime,
      log: silentLogger,
      alerts: null,
      jobs: {
        backup: () => Promise.reject(new Error('not used')),
        restore: () => Promise.reject(new Error('not used')),
        reconcile: async () => {
          asked.push(Date.now());
          return answers[Math.min(asked.length - 1, answers.length - 1)] as ReconcileJobResult;
        },
      },
    },
  );
  return { report, asked };
}

describe('the reconciliation drill on a live target', () => {
  it('asks again after the in-flight window when only positions differ, and passes when the difference is gone', async () => {
    const { report, asked } = await drillWith([answer('FAIL', ['position_mismatch'], 1), answer('PASS', [], 2)]);
    expect(report.verdict).toBe('PASS');
    expect(asked).toHaveLength(2);
    expect((asked[1] as number) - (asked[0] as number)).toBeGreaterThanOrEqual(340);
    expect(JSON.stringify(report.evidence)).toContain(
      '"positionBreakAskedAgain":{"firstReport":"demo/reports/reconciliation/20261121T000000Z-FAIL.json"}',
    );
  });

  it('fails when the position break is still there on the second read', async () => {
    const { report, asked } = await drillWith([
      answer('FAIL', ['position_mismatch'], 1),
      answer('FAIL', ['position_mismatch'], 2),
    ]);
    expect(report.verdict).toBe('FAIL');
    expect(asked).toHaveLength(2);
  });

  it('fails at once on any other break, without asking again', async () => {
    const { report, asked } = await drillWith([answer('FAIL', ['position_mismatch', 'missing_fill'], 1)]);
    expect(report.verdict).toBe('FAIL');
    expect(asked).toHaveLength(1);
  });
});
