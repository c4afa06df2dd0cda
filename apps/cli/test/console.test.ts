// `lifeboat console` and `lifeboat console token` as an operator runs them: the first start
// prints a token that signs in, a token made with --add is let in, the process stops on
// SIGTERM, and a bad role or port is refused with a message naming it.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LIFEBOAT_BIN, lifeboat } from '@lifeboat/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';

let dir: string;
let config: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-cli-console-'));
  config = join(dir, 'lifeboat.yaml');
  await writeFile(config, 'store:\n  type: fs\n  path: ./store\ntargets:\n  demo:\n    root: ./target\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('makes a token with --add, starts embedded with a first admin token that signs in, serves the dashboard, and stops on SIGTERM', async () => {
  const added = await lifeboat([
    'console',
    'token',
    '--name',
    'vera',
    '--role',
    'viewer',
    '--add',
    '--config',
    config,
    '--json',
  ]);
  expect(added.code, added.stderr).toBe(0);
  const { token: veraToken, addedTo } = JSON.parse(added.stdout);
  expect(addedTo).toBe(join(dir, '.lifeboat', 'console-tokens'));

  // With a grant already there, the console makes no admin token; start from none instead.
  await rm(addedTo);
  const child = spawn(process.execPath, [LIFEBOAT_BIN, 'console', '--port', '0', '--config', config], {
    env: { ...process.env, LIFEBOAT_REDIS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  let token = '';
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      const t = /^\s+token: (lbt_\S+)$/.exec(line);
      if (t) token = t[1] as string;
      const u = /^console \(embedded\) on (http:\/\/\S+) /.exec(line);
      if (u) resolve(u[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`console exited with ${code}: ${stderr}`)));
  });
  try {
    expect(token).toMatch(/^lbt_/);
    const me = await fetch(`${url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(await me.json()).toEqual({ name: 'admin', role: 'admin' });
    // The viewer's grant went with the file removed above.
    const vera = await fetch(`${url}/api/me`, { headers: { authorization: `Bearer ${veraToken}` } });
    expect(vera.status).toBe(401);
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('/assets/app.js');
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, stderr).toBe(0);
});

it('refuses a role that does not exist and a port that is not one, naming them', async () => {
  const role = await lifeboat(['console', 'token', '--name', 'x', '--role', 'root', '--config', config]);
  expect(role.code).toBe(2);
  expect(role.stderr).toContain('--role must be one of viewer, operator, approver, admin, got "root"');
  const port = await lifeboat(['console', '--port', '99999', '--config', config]);
  expect(port.code).toBe(2);
  expect(port.stderr).toContain('--port must be a TCP port (0-65535), got "99999"');
});
