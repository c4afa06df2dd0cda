import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic-file.js';

let dir: string;
const host = hostname().replace(/[^A-Za-z0-9-]/g, '_');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-atomic-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid as number;
}

describe('writeFileAtomic', () => {
  it('replaces the file, leaving no temporary file', async () => {
    const file = join(dir, 'state.json');
    await writeFileAtomic(file, 'one\n');
    await writeFileAtomic(file, 'two\n');
    expect(await readFile(file, 'utf8')).toBe('two\n');
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('removes the temporary file a killed writer of this host left, and no one else’s', async () => {
    const sub = await mkdtemp(join(dir, 'litter-'));
    const file = join(sub, 'kill_switch_state.json');
    await writeFile(file, 'before\n');
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const dead = `.kill_switch_state.json.${host}.${await deadPid()}.0badc0de.tmp`;
      const running = `.kill_switch_state.json.${host}.${live.pid}.0badc0de.tmp`;
      const otherHost = `.kill_switch_state.json.some-other-host.${await deadPid()}.0badc0de.tmp`;
      const otherFile = `.trading.db.${host}.${await deadPid()}.0badc0de.tmp`;
      for (const f of [dead, running, otherHost, otherFile]) await writeFile(join(sub, f), 'half');
      await writeFileAtomic(file, 'after\n');
      expect(await readFile(file, 'utf8')).toBe('after\n');
      expect((await readdir(sub)).sort()).toEqual([running, otherFile, otherHost, 'kill_switch_state.json'].sort());
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('creates a missing directory, and writes nothing when beforeRename calls it off', async () => {
    const file = join(dir, 'new', 'deeper', 'state.json');
    expect(await writeFileAtomic(file, 'x', { beforeRename: async () => false })).toBe(false);
    expect(await readdir(join(dir, 'new', 'deeper'))).toEqual([]);
    expect(await writeFileAtomic(file, 'y')).toBe(true);
    expect(await readFile(file, 'utf8')).toBe('y');
  });
});
