// A drill's stop condition: the production kill switch moving while a drill runs means
// production is in play, and the drill stops there. Real parts throughout (a generated
// target, the backup handler, the state-file kill switch); the only hand in it is the
// test's, which throws the production switch from inside the drill's first job, as an
// operator halting trading at that moment would.
import { readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKillSwitch, createRuntime, HttpFileKillSwitch, loadConfig } from '@lifeboat/adapters';
import { backup, silentLogger } from '@lifeboat/backup';
import { generateTarget } from '@lifeboat/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDrill } from '../src/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-drill-guard-'));
  await generateTarget(join(dir, 'target'), { sizeBytes: 256 * 1024, seed: 4 });
  await writeFile(
    join(dir, 'lifeboat.yaml'),
    ['store:', '  type: fs', '  path: store', 'targets:', '  demo:', '    root: target', ''].join('\n'),
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a drill while production moves', () => {
  it('stops when the production kill switch changes, naming why, and runs nothing after', async () => {
    const runtime = createRuntime(await loadConfig(join(dir, 'lifeboat.yaml')));
    const target = runtime.target('demo');
    const production = createKillSwitch(target);
    await production.deactivate('trading before the drill');
    const report = await runDrill(
      { drill: 'backup-verify', requestedBy: 'test' },
      {
        runtime,
        log: silentLogger,
        alerts: null,
        jobs: {
          backup: async (req) => {
            await new HttpFileKillSwitch({ stateFile: production.stateFile, timeoutMs: 1000 }).activate(
              'an operator halts trading during the drill',
            );
            return backup(req, { runtime, log: silentLogger });
          },
          restore: () => Promise.reject(new Error('not used')),
          reconcile: () => Promise.reject(new Error('not used')),
        },
      },
    );
    expect(report.verdict).toBe('FAIL');
    expect(report.failure).toMatch(/^verify-full: the production kill switch changed during the drill \(OFF → ON\)/);
    expect(report.steps.map((s) => `${s.name} ${s.status}`)).toEqual(['pick-backup PASSED', 'verify-full FAILED']);
    // No full verification ran: the drill stopped before its step did (the backup's own quick one is there).
    const verifications = join(dir, 'store', 'demo', 'backups', report.evidence.backupId as string, 'verifications');
    const records = readdirSync(verifications);
    expect(records.some((f) => f.includes('-quick-'))).toBe(true);
    expect(records.filter((f) => f.includes('-full-'))).toEqual([]);
    expect((await production.status()).state).toBe('ON');
  });
});
