// The dashboard in a real browser: headless Chromium against a console started as
// `lifeboat console` starts it (embedded mode), over a demo target trading live. The drill
// history the chart draws comes from drills run through the console's own API, and the
// backup the operator takes is a real one. Screenshots go to test-output/screenshots/.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configPath, createRuntime, loadConfig } from '@lifeboat/adapters';
import { type DemoTarget, initDemo } from '@lifeboat/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { issueToken } from '../src/auth.js';
import { type RunningConsole, startConsole } from '../src/start.js';
import { consoleClient } from './client.js';

// A live demo, a backup, three drills and a browser: minutes on a loaded 2-core machine.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

/** Debian's chromium (installed by .ci/run); GitHub's runners name theirs. */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SCREENSHOTS = join(import.meta.dirname, '..', 'test-output', 'screenshots');
/** Drills that finish in seconds against a running demo; backup-verify measures no RTO. */
const DRILLS = ['kill-switch', 'kill-switch', 'backup-verify'] as const;

const people = { vera: 'viewer', olga: 'operator', adam: 'admin' } as const;
type Person = keyof typeof people;
const tokens = Object.fromEntries(Object.entries(people).map(([n, r]) => [n, issueToken(n, r)])) as Record<
  Person,
  { token: string; line: string }
>;
const silent = { info() {}, warn() {}, error() {} };

let dir = '';
let config = '';
let demo: DemoTarget | undefined;
let running: RunningConsole | null = null;
let base = '';
let browser: Browser | null = null;
/** Console errors, page errors and CSP violations of every page this file opens. */
const problems: Array<{ page: string; kind: string; text: string; url: string }> = [];
/** The 401s a wrong token is expected to cause, set aside from `problems`. */
const expected401s: string[] = [];

const client = consoleClient(() => base);
const api = (who: Person, path: string, body?: object) => client.call(tokens[who].token, path, body);
const finished = (queue: string, jobId: string) => client.finished(tokens.vera.token, queue, jobId);

// Without a browser the file fails, by name, rather than skipping what it is here to check.
if (!existsSync(CHROMIUM)) {
  throw new Error(
    `no Chromium at ${CHROMIUM}: the dashboard tests drive a real browser. ` +
      'Install it (apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary.',
  );
}

beforeAll(async () => {
  await mkdir(SCREENSHOTS, { recursive: true });
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-console-dashboard-'));
  demo = await initDemo(join(dir, 'demo'));
  config = demo.config;
  await demo.start();

  running = await startConsole({
    runtime: createRuntime(await loadConfig(configPath(config))),
    log: silent,
    port: 0,
    host: '127.0.0.1',
    env: {
      LIFEBOAT_CONSOLE_TOKENS: Object.values(tokens)
        .map((t) => t.line)
        .join('\n'),
    },
  });
  expect(running.mode).toBe('embedded');
  base = running.url;

  // History for the chart, from real runs: a backup for the drills to work from, then the drills.
  // The kill-switch drill throws the switch of a sandbox copy, never production's.
  const switchBefore = (await api('vera', '/api/targets/demo/kill-switch')).json;
  const backup = await api('olga', '/api/targets/demo/backups', { kind: 'full', reason: 'dashboard test' });
  expect(backup.status, JSON.stringify(backup.json)).toBe(202);
  const backupDone = await finished('backup', backup.json.jobId);
  expect(backupDone.state, JSON.stringify(backupDone.error)).toBe('completed');
  for (const drill of DRILLS) {
    const run = await api('olga', '/api/targets/demo/drills', { drill });
    expect(run.status, JSON.stringify(run.json)).toBe(202);
    const done = await finished('drill', run.json.jobId);
    expect(done.state, `${drill}: ${JSON.stringify(done.error)}`).toBe('completed');
    expect(done.result.verdict, `${drill}: ${JSON.stringify(done.result.failure ?? null)}`).toBe('PASS');
  }
  const switchAfter = (await api('vera', '/api/targets/demo/kill-switch')).json;
  expect({ state: switchAfter.state, events: switchAfter.events.length }).toEqual({
    state: switchBefore.state,
    events: switchBefore.events.length,
  });

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
  await running?.close();
  await demo?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A page in a fresh context (its own sessionStorage) whose errors land in `problems`. */
async function openPage(name: string): Promise<Page> {
  const context = await (browser as Browser).newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // Scripts run in the page are given as text: this project's TypeScript has no DOM types.
  await page.addInitScript(`
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.cspViolations.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' (' + e.sourceFile + ':' + e.lineNumber + ')');
    });
  `);
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const url = msg.location().url;
    if (msg.type() === 'error' && url === `${base}/api/me` && msg.text().includes('401')) {
      expected401s.push(name);
      return;
    }
    problems.push({ page: name, kind: `console.${msg.type()}`, text: msg.text(), url });
  });
  page.on('pageerror', (err) => problems.push({ page: name, kind: 'pageerror', text: err.message, url: page.url() }));
  return page;
}

async function cspViolations(page: Page): Promise<string[]> {
  return page.evaluate<string[]>('window.cspViolations ?? []');
}

/** Closes a page opened by openPage, keeping the CSP violations it saw. */
async function closePage(page: Page, name: string) {
  for (const text of await cspViolations(page)) problems.push({ page: name, kind: 'csp', text, url: page.url() });
  await page.context().close();
}

async function signIn(page: Page, token: string) {
  await page.goto(`${base}/`);
  await page.locator('#token').fill(token);
  await page.locator('#signin-submit').click();
}

/** Waits until every section has been drawn from the API's answers. */
async function loaded(page: Page) {
  await page.locator('#performance-table').waitFor();
  await page.locator('svg#rto-chart').waitFor();
  await page.locator('#backups-table').waitFor();
  await page.locator('#queues-table').waitFor();
  await page.locator('#freshness-text').waitFor();
  await page.waitForFunction(`['ON', 'OFF', 'AUTO'].includes(document.getElementById('ks-state').dataset.state)`);
}

async function screenshot(page: Page, name: string) {
  const path = join(SCREENSHOTS, name);
  // From the top: the sticky header would otherwise be drawn where a click scrolled to.
  await page.evaluate('window.scrollTo(0, 0)');
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

const tableIds = (page: Page) =>
  page.locator('#backups-table tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-id')));

describe('the dashboard in Chromium, over a live demo with real drill runs', () => {
  it('a viewer sees the performance table, one chart point per drill run with an RTO and no action buttons; a wrong token is not accepted', async () => {
    const wrong = await openPage('wrong token');
    await signIn(wrong, 'lbt_not-a-token-anyone-was-issued');
    await expect.poll(() => wrong.locator('#status').textContent()).toBe('token not accepted');
    expect(await wrong.locator('#app').isHidden()).toBe(true);
    expect(await wrong.locator('#signin-view').isVisible()).toBe(true);
    await closePage(wrong, 'wrong token');

    const page = await openPage('viewer');
    await signIn(page, tokens.vera.token);
    await loaded(page);
    expect(await page.locator('#user-name').textContent()).toBe('vera');
    expect(await page.locator('#user-role').textContent()).toBe('viewer');

    // The runbook's table: its four columns, a row per scenario held to an RTO, and the drills
    // that ran with a measured RTO and PASS.
    expect(await page.locator('#performance-table thead th').allTextContents()).toEqual([
      'Scenario',
      'Target RTO',
      'Actual RTO',
      'Status',
    ]);
    const performance = (await api('vera', '/api/targets/demo/performance')).json.rows as Array<{
      drill: string;
      scenario: string;
      status: string;
      actualRtoSeconds: number | null;
    }>;
    const rows = page.locator('#performance-table tbody tr');
    expect(await rows.count()).toBe(performance.length);
    const ran = performance.filter((r) => r.status !== 'NOT RUN');
    expect(ran.map((r) => r.drill)).toEqual(['kill-switch']);
    for (const r of performance) {
      const cells = await page.locator(`#performance-table tr[data-drill="${r.drill}"] td`).allTextContents();
      expect(cells[0]).toBe(r.scenario);
      if (r.status === 'NOT RUN') {
        expect(cells.slice(2), r.drill).toEqual(['—', 'NOT RUN']);
      } else {
        expect(cells[2], r.drill).not.toBe('—');
        expect(cells[2], r.drill).toMatch(/^\d+(\.\d)? (ms|s)$/);
        expect(cells[3], r.drill).toBe('PASS');
      }
    }

    // The chart: one point per run that measured an RTO, each the run the API lists.
    const history = (await api('vera', '/api/targets/demo/drills')).json.drills as Array<{
      id: string;
      drill: string;
      verdict: string;
      rto_seconds: number | null;
    }>;
    expect(history.map((d) => d.drill)).toEqual([...DRILLS]);
    expect(history.every((d) => d.verdict === 'PASS')).toBe(true);
    const timed = history.filter((d) => typeof d.rto_seconds === 'number');
    expect(timed).toHaveLength(2);
    const points = page.locator('svg#rto-chart circle.point');
    expect(await points.count()).toBe(timed.length);
    expect((await points.evaluateAll((cs) => cs.map((c) => c.getAttribute('data-id')))).sort()).toEqual(
      timed.map((d) => d.id).sort(),
    );
    expect(await page.locator('svg#rto-chart circle.point.fail').count()).toBe(0);
    // Drills run seconds apart are still drawn apart, not one over the other.
    const xs = (await points.evaluateAll((cs) => cs.map((c) => Number(c.getAttribute('cx'))))).sort((a, b) => a - b);
    expect((xs[1] as number) - (xs[0] as number)).toBeGreaterThan(4);
    expect(await page.locator('svg#rto-chart line.target-line').count()).toBe(1);
    const box = await page.locator('svg#rto-chart').boundingBox();
    expect(box?.width).toBeGreaterThan(600);
    // Every run, with or without an RTO, in the table under the chart.
    expect(await page.locator('#drills-table tbody tr').count()).toBe(history.length);

    // The kill switch: its state, and its history newest first (the API's order), the newest
    // event named as the last change.
    const ks = (await api('vera', '/api/targets/demo/kill-switch')).json as {
      state: string;
      events: Array<{ timestamp: string; trigger: string }>;
    };
    expect(ks.events.length).toBeGreaterThan(1);
    expect(await page.locator('#ks-state').getAttribute('data-state')).toBe(ks.state);
    const shown = await page
      .locator('#ks-events-list li time')
      .evaluateAll((ts) => ts.map((t) => t.getAttribute('datetime')));
    expect(shown).toEqual(ks.events.slice(0, 50).map((e) => new Date(e.timestamp).toISOString()));
    const newest = ks.events[0] as { timestamp: string; trigger: string };
    expect(await page.locator('#ks-via').textContent()).toContain(
      `last change ${new Date(newest.timestamp).toISOString().slice(0, 19).replace('T', ' ')} UTC (${newest.trigger})`,
    );

    // A viewer reads; nothing to press.
    expect(await page.locator('#backup-now').count()).toBe(0);
    expect(await page.locator('#ks-activate').count()).toBe(0);
    expect(await page.locator('#ks-request').count()).toBe(0);
    expect(await page.locator('#queue-board').count()).toBe(0);
    await screenshot(page, 'viewer.png');
    await closePage(page, 'viewer');
  });

  it('an operator clicks "Back up now" and the new backup appears as a row of the backups table', async () => {
    const page = await openPage('operator');
    await signIn(page, tokens.olga.token);
    await loaded(page);
    expect(await page.locator('#user-role').textContent()).toBe('operator');
    const apiIds = async () =>
      ((await api('olga', '/api/targets/demo/backups')).json.backups as Array<{ backupId: string }>)
        .map((b) => b.backupId)
        .reverse();
    const before = await tableIds(page);
    expect(before.length).toBeGreaterThan(0);
    expect(before).toEqual(await apiIds());

    await page.locator('#backup-now').click();
    await page.locator('#status.status-ok').waitFor({ timeout: 240_000 });
    const status = (await page.locator('#status').textContent()) ?? '';
    const id = /^backup of demo completed: (\S+)$/.exec(status)?.[1];
    expect(id, status).toBeTruthy();
    const row = page.locator(`#backups-table tr[data-id="${id}"]`);
    await row.waitFor();
    expect(await row.getAttribute('class')).toContain('fresh-row');
    expect(await row.locator('td').nth(2).textContent()).toBe('full');

    const after = await tableIds(page);
    expect(after).toEqual([id, ...before]);
    expect(after).toEqual(await apiIds());
    await screenshot(page, 'operator-after-backup.png');
    await closePage(page, 'operator');
  });

  it('an admin in embedded mode sees no queue board link: the board is only mounted in distributed mode', async () => {
    const queues = await api('adam', '/api/queues');
    expect(queues.json.mode).toBe('embedded');
    expect(
      (await fetch(`${base}/admin/queues/`, { headers: { authorization: `Bearer ${tokens.adam.token}` } })).status,
    ).toBe(404);

    const page = await openPage('admin');
    const sessions: string[] = [];
    page.on('request', (req) => {
      if (new URL(req.url()).pathname === '/api/session') sessions.push(req.method());
    });
    await signIn(page, tokens.adam.token);
    await loaded(page);
    expect(await page.locator('#user-role').textContent()).toBe('admin');
    expect(await page.locator('#queue-mode').textContent()).toBe('embedded mode (in-process)');
    // The admin may act, but has no board to go to, so no session cookie is asked for either.
    expect(await page.locator('#backup-now').count()).toBe(1);
    expect(await page.locator('#ks-activate').count()).toBe(1);
    expect(await page.locator('#queue-board').count()).toBe(0);
    expect(sessions).toEqual([]);
    await screenshot(page, 'admin-embedded.png');
    await closePage(page, 'admin');
  });

  it('no page logs an error or breaks the content security policy, signed in or reloaded', async () => {
    const page = await openPage('reload');
    await signIn(page, 'lbt_still-not-a-token');
    await expect.poll(() => page.locator('#status').textContent()).toBe('token not accepted');
    await page.locator('#token').fill(tokens.adam.token);
    await page.locator('#signin-submit').click();
    await loaded(page);
    expect(await cspViolations(page)).toEqual([]);
    // Signed in from sessionStorage after a reload, then back to the sign-in form.
    await page.reload();
    await loaded(page);
    expect(await page.locator('#status').textContent()).toBe('');
    expect(await cspViolations(page)).toEqual([]);
    await page.locator('#signout').click();
    await expect.poll(() => page.locator('#status').textContent()).toBe('signed out');
    expect(await page.locator('#signin-view').isVisible()).toBe(true);
    expect(await cspViolations(page)).toEqual([]);
    await closePage(page, 'reload');

    // Only the wrong tokens were refused (one here, one in the viewer's test when it ran), and
    // nothing else went wrong on any page this file opened.
    expect(expected401s.filter((p) => p === 'reload')).toHaveLength(1);
    expect(expected401s.filter((p) => p !== 'reload' && p !== 'wrong token')).toEqual([]);
    expect(problems).toEqual([]);
  });
});
