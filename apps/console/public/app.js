// Lifeboat console: the dashboard's front-end. Plain DOM, no framework; every piece of data
// reaches the page through textContent or attributes, never as markup.

const TOKEN_KEY = 'lifeboat.token';
const TARGET_KEY = 'lifeboat.target';
const REFRESH_MS = 10_000;
const JOB_POLL_MS = 500;
const DRILLS_SHOWN = 20;
const EVENTS_SHOWN = 50;
const REQUESTS_SHOWN = 20;
const BACKUPS_SHOWN = 50;
const SVG_NS = 'http://www.w3.org/2000/svg';

/* ------------------------------------------------------------------ DOM helpers */

/** An element with attributes and children; strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

/** An SVG element, same conventions as h(). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const $ = (id) => document.getElementById(id);

/** Replaces an element's children; null, undefined and false are left out. */
function fill(el, ...children) {
  el.replaceChildren();
  appendAll(el, children);
}

/* ------------------------------------------------------------------ formatting */

const pad2 = (n) => String(n).padStart(2, '0');

/** 850 ms, 4.2 s, 42 s, 3m 12s, 2h 05m, 3d 4h. */
function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const sign = seconds < 0 ? '-' : '';
  const v = Math.abs(seconds);
  if (v < 1) {
    const ms = Math.round(v * 1000);
    if (ms < 1000) return `${sign}${ms} ms`;
  }
  if (v < 10) {
    const tenths = Math.round(v * 10) / 10;
    if (tenths < 10) return `${sign}${tenths} s`;
  }
  const whole = Math.round(v);
  if (whole < 60) return `${sign}${whole} s`;
  if (whole < 3600) {
    const m = Math.floor(whole / 60);
    const r = whole % 60;
    return `${sign}${m}m${r ? ` ${pad2(r)}s` : ''}`;
  }
  if (whole < 86_400) {
    const hours = Math.floor(whole / 3600);
    const m = Math.floor((whole % 3600) / 60);
    return `${sign}${hours}h${m ? ` ${pad2(m)}m` : ''}`;
  }
  const d = Math.floor(whole / 86_400);
  const hours = Math.floor((whole % 86_400) / 3600);
  return `${sign}${d}d${hours ? ` ${hours}h` : ''}`;
}

/** 512 B, 12.3 KiB, 4.5 MiB, 1.2 GiB. */
function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** 2024-05-06 02:00:13 UTC */
function formatTime(iso) {
  if (!iso) return '—';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  return `${t.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function timeEl(iso) {
  if (!iso) return '—';
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  return h('time', { datetime: t.toISOString() }, formatTime(iso));
}

const slug = (v) =>
  String(v ?? 'unknown')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');

/** A status badge: class `badge status-<slug>` (status-pass, status-fail, status-not-run, status-ok…). */
function badge(status, text = status) {
  return h('span', { class: `badge status-${slug(status)}`, 'data-status': status }, text);
}

/* ------------------------------------------------------------------ status line */

const statusState = { source: '' };

/** Shows a message in #status. kind: info | ok | error | busy. */
function setStatus(text, kind = 'info', source = 'action') {
  const el = $('status');
  el.textContent = text;
  el.className = text ? `status-${kind}` : '';
  statusState.source = text ? source : '';
}

function clearStatus(source) {
  if (!source || statusState.source === source) setStatus('');
}

function errorText(err) {
  if (err instanceof ApiError) return err.hint ? `${err.message} — ${err.hint}` : err.message;
  return err?.message ? String(err.message) : String(err);
}

/* ------------------------------------------------------------------ API */

class ApiError extends Error {
  constructor(status, code, message, hint) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
  }
}

const session = { token: '', me: null, targets: [], target: '' };

async function api(path, { method = 'GET', body, token = session.token } = {}) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `cannot reach the console server (${err?.message ?? err})`);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data?.error;
    const message = typeof e?.message === 'string' ? e.message : `${method} ${path} failed: HTTP ${res.status}`;
    throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, message, e?.hint);
  }
  return data;
}

const enc = encodeURIComponent;
const targetPath = (t, rest = '') => `/api/targets/${enc(t)}${rest}`;

/* ------------------------------------------------------------------ permissions */

const canOperate = () => ['operator', 'admin'].includes(session.me?.role);
const canApprove = () => ['approver', 'admin'].includes(session.me?.role);
const isAdmin = () => session.me?.role === 'admin';

/* ------------------------------------------------------------------ sign-in */

function showSignin() {
  $('app').hidden = true;
  $('session').hidden = true;
  $('updated').hidden = true;
  $('signin-view').hidden = false;
  $('token').value = '';
  $('token').focus();
}

function showApp() {
  $('signin-view').hidden = true;
  $('app').hidden = false;
  $('session').hidden = false;
  $('user-name').textContent = session.me.name;
  $('user-role').textContent = session.me.role;
  $('user-role').className = `role role-${slug(session.me.role)}`;
  buildActions();
}

async function signIn(token) {
  const me = await api('/api/me', { token });
  session.token = token;
  session.me = me;
  boardSession = null;
  sessionStorage.setItem(TOKEN_KEY, token);
  resetView();
  showApp();
  startTimer();
  await refreshAll();
}

function signOut(message = '', kind = 'info') {
  stopTimer();
  // The queue board's cookie is HttpOnly: only the server can clear it.
  if (session.token) {
    fetch('/api/session', { method: 'DELETE', headers: { authorization: `Bearer ${session.token}` } }).catch(() => {});
  }
  sessionStorage.removeItem(TOKEN_KEY);
  session.token = '';
  session.me = null;
  session.targets = [];
  boardSession = null;
  resetView();
  showSignin();
  setStatus(message, kind, 'auth');
}

function signinMessage(err) {
  if (err instanceof ApiError && err.status === 401) return 'token not accepted';
  if (err instanceof ApiError && err.status === 429) return 'too many failed attempts, wait a minute';
  return errorText(err);
}

$('signin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = $('token').value.trim();
  if (!token) {
    setStatus('enter your access token', 'error', 'auth');
    return;
  }
  const button = $('signin-submit');
  button.disabled = true;
  setStatus('signing in…', 'busy', 'auth');
  try {
    await signIn(token);
    clearStatus('auth');
  } catch (err) {
    setStatus(signinMessage(err), 'error', 'auth');
    $('token').select();
  } finally {
    button.disabled = false;
  }
});

$('signout').addEventListener('click', () => signOut('signed out'));

/** Any call answered 401 after sign-in means the token no longer works. */
function handleAuthLoss(err) {
  if (err instanceof ApiError && err.status === 401 && session.token) {
    signOut('session ended: token not accepted — sign in again', 'error');
    return true;
  }
  return false;
}

/* ------------------------------------------------------------------ targets */

async function loadTargets() {
  const data = await api('/api/targets');
  const targets = Array.isArray(data?.targets) ? data.targets : [];
  const names = targets.map((t) => t.name);
  const changed = JSON.stringify(targets) !== JSON.stringify(session.targets);
  session.targets = targets;
  const stored = sessionStorage.getItem(TARGET_KEY);
  if (!names.includes(session.target)) session.target = names.includes(stored) ? stored : (names[0] ?? '');
  if (!changed) return;

  const select = $('target');
  select.replaceChildren(
    ...targets.map((t) => h('option', { value: t.name }, t.engine ? `${t.name} (${t.engine})` : t.name)),
  );
  select.value = session.target;
  const single = targets.length <= 1;
  select.hidden = single;
  $('target-picker').hidden = single;
  const label = $('single-target');
  label.hidden = targets.length !== 1;
  label.textContent = targets.length === 1 ? `target ${names[0]}` : '';
}

$('target').addEventListener('change', () => {
  session.target = $('target').value;
  sessionStorage.setItem(TARGET_KEY, session.target);
  resetView();
  refreshAll();
});

/* ------------------------------------------------------------------ refresh loop */

let timer = 0;
let refreshing = null;
let refreshAgain = false;
/** Bumped when the view is reset (new target, sign-out) so late answers are dropped. */
let generation = 0;
/** Last data rendered per section, to skip re-rendering what did not change. */
const rendered = new Map();
const latest = { drills: null, killSwitch: null, backups: null };
/** The backup this page just took, marked in the list. */
let highlightBackup = '';

function startTimer() {
  stopTimer();
  timer = setInterval(() => refreshAll(), REFRESH_MS);
}

function stopTimer() {
  if (timer) clearInterval(timer);
  timer = 0;
}

function resetView() {
  generation++;
  rendered.clear();
  latest.drills = latest.killSwitch = latest.backups = null;
  highlightBackup = '';
  for (const id of Object.values(SECTION_BODIES)) $(id).replaceChildren(h('p', { class: 'empty' }, 'loading…'));
  $('ks-events').replaceChildren();
  $('rto-chart-box').replaceChildren();
  $('rto-legend-box').replaceChildren();
  $('ks-via').textContent = '';
  const ks = $('ks-state');
  ks.className = 'ks-badge ks-unknown';
  ks.dataset.state = '';
  ks.replaceChildren(h('span', { class: 'ks-word' }, '…'), h('span', { class: 'ks-meaning' }, 'loading'));
}

/** Reloads everything; a call during a refresh runs one more refresh after it. */
function refreshAll() {
  if (!session.token) return Promise.resolve();
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      await refreshOnce();
    } while (refreshAgain && session.token);
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshOnce() {
  const gen = generation;
  const errors = [];
  try {
    await loadTargets();
  } catch (err) {
    if (handleAuthLoss(err)) return;
    errors.push(`targets: ${errorText(err)}`);
  }
  if (gen !== generation) return;
  const t = session.target;
  const jobs = [['queues', () => api('/api/queues'), renderQueues]];
  if (t) {
    jobs.push(
      ['performance', () => api(targetPath(t, '/performance')), renderPerformance],
      ['freshness', () => api(targetPath(t, '/freshness')), renderFreshness],
      ['drills', () => api(targetPath(t, '/drills')), renderDrills],
      ['kill-switch', () => api(targetPath(t, '/kill-switch')), renderKillSwitch],
      ['backups', () => api(targetPath(t, '/backups')), renderBackups],
    );
  } else {
    renderNoTarget();
  }
  const results = await Promise.allSettled(jobs.map(([, load]) => load()));
  if (gen !== generation || !session.token) return;
  for (const [i, r] of results.entries()) {
    const [name, , render] = jobs[i];
    if (r.status === 'fulfilled') {
      const key = JSON.stringify(r.value);
      if (rendered.get(name) !== key) {
        rendered.set(name, key);
        try {
          render(r.value);
        } catch (err) {
          console.warn(`rendering ${name} failed`, err);
          errors.push(`${name}: the answer could not be shown`);
        }
      }
    } else {
      if (handleAuthLoss(r.reason)) return;
      errors.push(`${name}: ${errorText(r.reason)}`);
      rendered.delete(name);
      renderSectionError(name, r.reason);
    }
  }
  if (errors.length) setStatus(errors.join(' · '), 'error', 'refresh');
  else clearStatus('refresh');
  const updated = $('updated');
  updated.hidden = false;
  updated.textContent = `updated ${formatTime(new Date().toISOString()).slice(11)}`;
}

const SECTION_BODIES = {
  performance: 'performance-body',
  freshness: 'freshness-body',
  drills: 'drills-body',
  'kill-switch': 'ks-requests',
  backups: 'backups-body',
  queues: 'queues-body',
};

function renderSectionError(name, err) {
  if (name === 'kill-switch') {
    // Never leave an old state on show when the switch could not be read.
    const ks = $('ks-state');
    ks.className = 'ks-badge ks-unknown';
    ks.dataset.state = 'UNKNOWN';
    ks.replaceChildren(h('span', { class: 'ks-word' }, '?'), h('span', { class: 'ks-meaning' }, 'state unknown'));
    $('ks-via').textContent = '';
  }
  const body = $(SECTION_BODIES[name]);
  if (!body) return;
  body.replaceChildren(h('p', { class: 'section-error' }, `Could not load: ${errorText(err)}`));
}

function renderNoTarget() {
  for (const name of ['performance', 'freshness', 'drills', 'backups']) {
    $(SECTION_BODIES[name]).replaceChildren(h('p', { class: 'empty' }, 'No target is configured.'));
  }
  $('rto-chart-box').replaceChildren();
  $('rto-legend-box').replaceChildren();
}

/* ------------------------------------------------------------------ tables */

/** A table from header labels and rows of cells; a row may be { cells, attrs }. */
function table(id, headers, rows, extraClass = '') {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { id, class: `data ${extraClass}`.trim() },
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          headers.map((label) => h('th', { scope: 'col' }, label)),
        ),
      ),
      h(
        'tbody',
        null,
        rows.map((row) => {
          const { cells, attrs } = Array.isArray(row) ? { cells: row, attrs: null } : row;
          return h(
            'tr',
            attrs,
            cells.map((c) => (c instanceof Node && c.nodeName === 'TD' ? c : h('td', null, c))),
          );
        }),
      ),
    ),
  );
}

const num = (v) => h('td', { class: 'num' }, v === null || v === undefined ? '—' : String(v));

/* ------------------------------------------------------------------ performance */

function renderPerformance(data) {
  const rows = Array.isArray(data?.rows) ? data.rows : [];
  const body = $('performance-body');
  if (!rows.length) {
    body.replaceChildren(h('p', { class: 'empty' }, 'No scenario is held to an RTO.'));
    return;
  }
  body.replaceChildren(
    table(
      'performance-table',
      ['Scenario', 'Target RTO', 'Actual RTO', 'Status'],
      rows.map((r) => ({
        attrs: {
          class: `row-${slug(r.status)}`,
          'data-drill': r.drill,
          'data-drill-id': r.drillId ?? '',
          title: r.at ? `${r.drill}, run ${formatTime(r.at)}` : `${r.drill}, not run yet`,
        },
        cells: [
          r.scenario,
          h('td', { class: 'num' }, formatDuration(r.targetRtoSeconds)),
          h(
            'td',
            {
              class: `num${r.actualRtoSeconds !== null && r.actualRtoSeconds > r.targetRtoSeconds ? ' over' : ''}`,
            },
            formatDuration(r.actualRtoSeconds),
          ),
          h('td', null, badge(r.status)),
        ],
      })),
      'performance',
    ),
  );
}

/* ------------------------------------------------------------------ freshness */

function renderFreshness(data) {
  const body = $('freshness-body');
  const status = data?.status ?? 'NONE';
  const rpo = formatDuration(data?.rpoTargetSeconds);
  const nv = data?.newestVerified;
  const age = typeof data?.ageSeconds === 'number' ? Math.max(0, data.ageSeconds) : null;
  const sentence =
    nv && age !== null
      ? `newest verified backup ${formatDuration(age)} old — RPO target ${rpo}: ${status}`
      : `no verified backup yet — RPO target ${rpo}: ${status}`;

  const meter = h('div', { class: `meter status-${slug(status)}`, 'aria-hidden': 'true', hidden: age === null });
  const bar = h('div', { class: 'meter-fill' });
  const ratio = age !== null && data.rpoTargetSeconds > 0 ? age / data.rpoTargetSeconds : status === 'NONE' ? 0 : 1;
  bar.style.width = `${Math.min(100, Math.max(age !== null ? 2 : 0, ratio * 100)).toFixed(1)}%`;
  meter.append(bar, h('div', { class: 'meter-mark', title: 'RPO target' }));

  const details = nv
    ? h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Backup'),
        h('dd', null, h('code', null, nv.backupId)),
        h('dt', null, 'Taken'),
        h('dd', null, timeEl(nv.createdAt)),
        h('dt', null, 'Verified'),
        h('dd', null, timeEl(nv.verifiedAt)),
      )
    : null;

  fill(
    body,
    h(
      'div',
      { class: 'freshness-head' },
      badge(status, status),
      h('p', { id: 'freshness-text', class: 'freshness-text' }, sentence),
    ),
    meter,
    h(
      'p',
      { class: 'meter-legend muted' },
      age !== null ? `${Math.round((age / Math.max(1e-9, data.rpoTargetSeconds)) * 100)}% of the RPO target` : '',
    ),
    details,
  );
}

/* ------------------------------------------------------------------ drills: chart */

const DRILL_COLOURS = {
  'kill-switch': '#0072b2',
  'shadow-failover': '#d55e00',
  'database-restore': '#009e73',
  'cold-restore': '#cc79a7',
  'vendor-connectivity-loss': '#8a6d00',
  'backup-verify': '#56b4e9',
  reconciliation: '#6a3d9a',
  'full-simulation': '#555555',
};
const SPARE_COLOURS = ['#e69f00', '#1f77b4', '#b15928', '#2ca02c', '#9467bd', '#17becf', '#7f7f7f'];

function colourOf(drill) {
  if (DRILL_COLOURS[drill]) return DRILL_COLOURS[drill];
  let hash = 0;
  for (const c of String(drill)) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return SPARE_COLOURS[hash % SPARE_COLOURS.length];
}

const NICE_SECONDS = [
  0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
  10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
];
const NICE_MS = [
  60_000, 300_000, 900_000, 1_800_000, 3_600_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000, 172_800_000,
  604_800_000, 1_209_600_000, 2_592_000_000, 5_184_000_000, 7_776_000_000, 15_552_000_000, 31_536_000_000,
];
const DAY_MS = 86_400_000;
/** The narrowest time window the chart draws. */
const MIN_WINDOW_MS = 600_000;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function yScale(values, top, bottom) {
  const positive = values.filter((v) => v > 0);
  const max = Math.max(...values, 1e-3);
  const min = positive.length ? Math.min(...positive) : max;
  if (max / min > 30) {
    const lo = Math.log10(min / 1.6);
    const hi = Math.log10(max * 1.6);
    const at = (v) => bottom - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * (bottom - top);
    let ticks = NICE_SECONDS.filter((v) => v >= 10 ** lo && v <= 10 ** hi);
    while (ticks.length > 7) ticks = ticks.filter((_, i) => i % 2 === 0);
    return { at, ticks, log: true };
  }
  const step = NICE_SECONDS.find((st) => (max * 1.1) / st <= 5) ?? NICE_SECONDS[NICE_SECONDS.length - 1];
  const domainMax = Math.ceil((max * 1.1) / step) * step;
  const at = (v) => bottom - (v / domainMax) * (bottom - top);
  const ticks = [];
  for (let v = 0; v <= domainMax + step / 2; v += step) ticks.push(Number(v.toFixed(6)));
  return { at, ticks, log: false };
}

function xScale(times, left, right) {
  let t0 = Math.min(...times);
  let t1 = Math.max(...times);
  // Runs close together get a short window, not a day: drills run back to back stay apart.
  if (t1 - t0 < MIN_WINDOW_MS) {
    const mid = (t0 + t1) / 2;
    t0 = mid - MIN_WINDOW_MS / 2;
    t1 = mid + MIN_WINDOW_MS / 2;
  }
  const padMs = (t1 - t0) * 0.04;
  t0 -= padMs;
  t1 += padMs;
  const at = (t) => left + ((t - t0) / (t1 - t0)) * (right - left);
  const maxTicks = Math.max(2, Math.floor((right - left) / 76));
  const step = NICE_MS.find((st) => (t1 - t0) / st <= maxTicks) ?? NICE_MS[NICE_MS.length - 1];
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  const label = (t) => {
    const d = new Date(t);
    const date = `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
    if (step >= 31_536_000_000) return String(d.getUTCFullYear());
    if (step >= DAY_MS) return step >= 2_592_000_000 ? `${date} ${d.getUTCFullYear()}` : date;
    const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
    return t % DAY_MS === 0 ? date : hm;
  };
  return { at, ticks, label };
}

function renderChart(drills) {
  const box = $('rto-chart-box');
  const legendBox = $('rto-legend-box');
  const runs = drills.filter(
    (d) =>
      typeof d.rto_seconds === 'number' && Number.isFinite(d.rto_seconds) && !Number.isNaN(Date.parse(d.started_at)),
  );
  if (!runs.length) {
    box.replaceChildren(h('p', { class: 'empty', id: 'rto-chart-empty' }, 'No drill has measured an RTO yet.'));
    legendBox.replaceChildren();
    return;
  }

  const series = new Map();
  for (const r of runs) {
    if (!series.has(r.drill)) series.set(r.drill, { runs: [], target: null });
    const sr = series.get(r.drill);
    sr.runs.push(r);
  }
  for (const d of drills) {
    const sr = series.get(d.drill);
    if (sr && typeof d.rto_target === 'number') sr.target = d.rto_target; // the newest target wins
  }

  const width = Math.max(320, Math.round(box.clientWidth || 720));
  const height = width < 560 ? 240 : 300;
  const m = { left: 68, right: 18, top: 14, bottom: 34 };
  const values = [...runs.map((r) => r.rto_seconds), ...[...series.values()].map((v) => v.target ?? 0)];
  const y = yScale(values, m.top, height - m.bottom);
  const x = xScale(
    runs.map((r) => Date.parse(r.started_at)),
    m.left,
    width - m.right,
  );

  const svg = s('svg', {
    id: 'rto-chart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `RTO of the recent drills over time${y.log ? ' (logarithmic scale)' : ''}`,
    class: 'chart',
  });

  // Grid and axes.
  const grid = s('g', { class: 'grid' });
  const yAxis = s('g', { class: 'axis y-axis' });
  for (const v of y.ticks) {
    const py = y.at(v).toFixed(1);
    grid.append(s('line', { x1: m.left, x2: width - m.right, y1: py, y2: py }));
    yAxis.append(
      s(
        'text',
        { x: m.left - 8, y: py, 'text-anchor': 'end', 'dominant-baseline': 'middle' },
        v === 0 ? '0' : formatDuration(v),
      ),
    );
  }
  const xAxis = s('g', { class: 'axis x-axis' });
  for (const t of x.ticks) {
    const px = x.at(t).toFixed(1);
    grid.append(s('line', { x1: px, x2: px, y1: m.top, y2: height - m.bottom, class: 'vgrid' }));
    xAxis.append(s('line', { x1: px, x2: px, y1: height - m.bottom, y2: height - m.bottom + 5 }));
    xAxis.append(s('text', { x: px, y: height - m.bottom + 18, 'text-anchor': 'middle' }, x.label(t)));
  }
  xAxis.append(
    s('line', { class: 'axis-line', x1: m.left, x2: width - m.right, y1: height - m.bottom, y2: height - m.bottom }),
  );
  yAxis.append(s('line', { class: 'axis-line', x1: m.left, x2: m.left, y1: m.top, y2: height - m.bottom }));
  yAxis.append(
    s(
      'text',
      {
        class: 'axis-title',
        x: 12,
        y: (m.top + height - m.bottom) / 2,
        transform: `rotate(-90 12 ${(m.top + height - m.bottom) / 2})`,
        'text-anchor': 'middle',
      },
      'RTO',
    ),
  );
  svg.append(grid, xAxis, yAxis);

  // Targets, lines, points.
  const targets = s('g', { class: 'targets' });
  const lines = s('g', { class: 'series-lines' });
  const points = s('g', { class: 'points' });
  for (const [drill, sr] of series) {
    const colour = colourOf(drill);
    if (sr.target !== null) {
      const py = y.at(sr.target).toFixed(1);
      targets.append(
        s(
          'line',
          {
            class: 'target-line',
            'data-drill': drill,
            x1: m.left,
            x2: width - m.right,
            y1: py,
            y2: py,
            stroke: colour,
            'stroke-width': 1.5,
            'stroke-dasharray': '6 4',
          },
          s('title', null, `${drill}: RTO target ${formatDuration(sr.target)}`),
        ),
      );
    }
    const pts = sr.runs.map((r) => [x.at(Date.parse(r.started_at)), y.at(r.rto_seconds), r]);
    if (pts.length > 1) {
      lines.append(
        s('polyline', {
          class: 'series-line',
          'data-drill': drill,
          points: pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' '),
          fill: 'none',
          stroke: colour,
          'stroke-width': 1.5,
          'stroke-opacity': 0.55,
        }),
      );
    }
    for (const [px, py, r] of pts) {
      const fail = r.verdict !== 'PASS';
      points.append(
        s(
          'circle',
          {
            class: `point ${fail ? 'fail' : 'pass'}`,
            'data-drill': drill,
            'data-id': r.id,
            cx: px.toFixed(1),
            cy: py.toFixed(1),
            r: 5,
            fill: colour,
            stroke: colour,
            'stroke-width': fail ? 2.5 : 1.5,
          },
          s(
            'title',
            null,
            `${drill} — ${formatTime(r.started_at)}\nRTO ${formatDuration(r.rto_seconds)}` +
              (r.rto_target !== null && r.rto_target !== undefined ? ` (target ${formatDuration(r.rto_target)})` : '') +
              `\n${r.verdict}`,
          ),
        ),
      );
    }
  }
  svg.append(targets, lines, points);
  box.replaceChildren(svg);

  legendBox.replaceChildren(
    h(
      'ul',
      { class: 'legend', id: 'rto-legend' },
      [...series].map(([drill, sr]) => {
        const swatch = h('span', { class: 'swatch', 'aria-hidden': 'true' });
        swatch.style.backgroundColor = colourOf(drill);
        return h(
          'li',
          { 'data-drill': drill },
          swatch,
          h('span', { class: 'legend-name' }, drill),
          h(
            'span',
            { class: 'muted' },
            `${sr.runs.length} run${sr.runs.length === 1 ? '' : 's'}${sr.target !== null ? ` · target ${formatDuration(sr.target)}` : ''}`,
          ),
        );
      }),
      h(
        'li',
        { class: 'legend-key muted' },
        `dashed: RTO target · hollow point: failed drill${y.log ? ' · logarithmic scale' : ''}`,
      ),
    ),
  );
}

let resizeTimer = 0;
let lastChartWidth = 0;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    const w = $('rto-chart-box').clientWidth;
    if (latest.drills && Math.abs(w - lastChartWidth) > 8) {
      lastChartWidth = w;
      renderChart(latest.drills);
    }
  }, 150);
});

/* ------------------------------------------------------------------ drills: table */

function renderDrills(data) {
  const drills = Array.isArray(data?.drills) ? data.drills : [];
  latest.drills = drills;
  lastChartWidth = $('rto-chart-box').clientWidth;
  renderChart(drills);
  const body = $('drills-body');
  if (!drills.length) {
    body.replaceChildren(h('p', { class: 'empty' }, 'No drill has run on this target yet.'));
    return;
  }
  const recent = [...drills].reverse().slice(0, DRILLS_SHOWN);
  const pair = (v, t) => `${formatDuration(v)} / ${formatDuration(t)}`;
  fill(
    body,
    table(
      'drills-table',
      ['Started', 'Drill', 'Verdict', 'RTO / target', 'RPO / target'],
      recent.map((d) => ({
        attrs: { 'data-id': d.id, 'data-drill': d.drill, title: d.id },
        cells: [
          timeEl(d.started_at),
          h('td', null, h('span', { class: 'drill-name' }, swatchFor(d.drill), d.drill)),
          h('td', null, badge(d.verdict)),
          h(
            'td',
            { class: `num${isOver(d.rto_seconds, d.rto_target) ? ' over' : ''}` },
            pair(d.rto_seconds, d.rto_target),
          ),
          h(
            'td',
            { class: `num${isOver(d.rpo_seconds, d.rpo_target) ? ' over' : ''}` },
            pair(d.rpo_seconds, d.rpo_target),
          ),
        ],
      })),
    ),
    drills.length > DRILLS_SHOWN
      ? h('p', { class: 'muted small' }, `showing the newest ${DRILLS_SHOWN} of ${drills.length}`)
      : null,
  );
}

const isOver = (v, t) => typeof v === 'number' && typeof t === 'number' && v > t;

function swatchFor(drill) {
  const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
  sw.style.backgroundColor = colourOf(drill);
  return sw;
}

/* ------------------------------------------------------------------ kill switch */

const KS_MEANING = {
  ON: 'trading halted',
  OFF: 'trading allowed',
  AUTO: 'trading allowed · automatic triggers armed',
};

function renderKillSwitch(data) {
  latest.killSwitch = data;
  const state = ['ON', 'OFF', 'AUTO'].includes(data?.state) ? data.state : 'ON';
  const badgeEl = $('ks-state');
  badgeEl.className = `ks-badge ks-${state.toLowerCase()}`;
  badgeEl.dataset.state = state;
  badgeEl.replaceChildren(
    h('span', { class: 'ks-word' }, state),
    h('span', { class: 'ks-meaning' }, KS_MEANING[state]),
  );
  // The API lists events and requests newest first.
  const events = Array.isArray(data?.events) ? data.events : [];
  const lastChange = events.length ? events[0] : null;
  $('ks-via').textContent =
    `read via ${data?.via === 'file' ? 'the state file' : 'the trading system API'}` +
    (lastChange ? ` · last change ${formatTime(lastChange.timestamp)} (${lastChange.trigger})` : '');

  $('ks-activate')?.classList.toggle('preferred', state !== 'ON');
  $('ks-request')?.classList.toggle('preferred', state === 'ON');

  // Requests, newest first.
  const requests = Array.isArray(data?.requests) ? data.requests.slice(0, REQUESTS_SHOWN) : [];
  const me = session.me?.name;
  const reqBox = $('ks-requests');
  if (!requests.length) {
    reqBox.replaceChildren(h('p', { class: 'empty' }, 'No deactivation request.'));
  } else {
    reqBox.replaceChildren(
      h(
        'ol',
        { class: 'requests', id: 'ks-requests-list' },
        requests.map((r) =>
          h(
            'li',
            { class: `request req-${slug(r.status)}`, 'data-id': r.id },
            h(
              'div',
              { class: 'request-body' },
              h(
                'div',
                { class: 'request-head' },
                badge(r.status),
                h('strong', null, r.requestedBy),
                h('span', { class: 'muted' }, timeEl(r.requestedAt)),
              ),
              h('div', { class: 'request-reason' }, r.reason),
            ),
            h('div', { class: 'request-action' }, requestAction(r, me)),
          ),
        ),
      ),
    );
  }

  // Events, newest first.
  const evBox = $('ks-events');
  if (!events.length) {
    evBox.replaceChildren(h('p', { class: 'empty' }, 'No change recorded.'));
  } else {
    const newest = events.slice(0, EVENTS_SHOWN);
    evBox.replaceChildren(
      h(
        'ol',
        { class: 'events', id: 'ks-events-list' },
        newest.map((e) =>
          h(
            'li',
            { class: `event ${e.activated ? 'event-on' : 'event-off'}` },
            h('span', { class: 'event-dot', 'aria-hidden': 'true' }),
            h(
              'div',
              { class: 'event-body' },
              h(
                'div',
                { class: 'event-head' },
                h('strong', null, e.activated ? 'activated' : 'deactivated'),
                h('span', { class: 'muted' }, ` by ${e.trigger} · `),
                timeEl(e.timestamp),
              ),
              h('div', { class: 'event-reason' }, e.reason),
              metadataLine(e.metadata),
            ),
          ),
        ),
      ),
    );
  }
}

function metadataLine(meta) {
  if (!meta || typeof meta !== 'object') return null;
  const entries = Object.entries(meta);
  if (!entries.length) return null;
  const text = entries
    .map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join(' · ');
  return h('div', { class: 'event-meta muted' }, text.length > 300 ? `${text.slice(0, 300)}…` : text);
}

function requestAction(r, me) {
  if (r.status !== 'pending') return '';
  if (r.requestedBy === me) return h('span', { class: 'muted small' }, 'awaiting another approver');
  if (!canApprove()) return h('span', { class: 'muted small' }, 'awaiting approval');
  return h(
    'button',
    {
      type: 'button',
      class: 'ks-approve primary small',
      'data-id': r.id,
      onclick: (ev) => approveRequest(r.id, ev.currentTarget),
    },
    'Approve',
  );
}

/** Reason from the inline field, or asked for when the field is empty. */
function askReason(what) {
  const input = $('ks-reason');
  let reason = input?.value.trim() ?? '';
  if (!reason) reason = (window.prompt(`Reason to ${what}:`) ?? '').trim();
  return reason;
}

async function withBusy(button, fn) {
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (err) {
    if (!handleAuthLoss(err)) setStatus(errorText(err), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

async function activateKillSwitch(button) {
  const reason = askReason('activate the kill switch (halts trading)');
  if (!reason) {
    setStatus('activation cancelled: a reason is required', 'error');
    return;
  }
  const t = session.target;
  await withBusy(button, async () => {
    setStatus(`activating the kill switch of ${t}…`, 'busy');
    const data = await api(targetPath(t, '/kill-switch/activate'), { method: 'POST', body: { reason } });
    $('ks-reason').value = '';
    if (t === session.target && data?.state) {
      rendered.set('kill-switch', JSON.stringify(data));
      renderKillSwitch(data);
    }
    setStatus(`kill switch of ${t} is ${data?.state ?? 'ON'}: trading halted`, 'ok');
    await refreshAll();
  });
}

async function requestDeactivation(button) {
  const reason = askReason('deactivate the kill switch (resumes trading once approved)');
  if (!reason) {
    setStatus('request cancelled: a reason is required', 'error');
    return;
  }
  const t = session.target;
  await withBusy(button, async () => {
    setStatus(`requesting deactivation of ${t}'s kill switch…`, 'busy');
    const r = await api(targetPath(t, '/kill-switch/deactivation-requests'), { method: 'POST', body: { reason } });
    $('ks-reason').value = '';
    setStatus(
      `deactivation requested (${r?.id ?? 'new request'}): another person with the approver role must approve it`,
      'ok',
    );
    await refreshAll();
  });
}

async function approveRequest(id, button) {
  const t = session.target;
  await withBusy(button, async () => {
    setStatus(`approving deactivation request ${id}…`, 'busy');
    const data = await api(targetPath(t, `/kill-switch/deactivation-requests/${enc(id)}/approve`), {
      method: 'POST',
      body: {},
    });
    if (t === session.target && data?.state) {
      rendered.set('kill-switch', JSON.stringify(data));
      renderKillSwitch(data);
    }
    setStatus(
      `deactivation approved: kill switch of ${t} is ${data?.state ?? 'OFF'}${data?.state === 'ON' ? '' : ', trading allowed'}`,
      'ok',
    );
    await refreshAll();
  });
}

/* ------------------------------------------------------------------ backups */

function renderBackups(data) {
  const backups = Array.isArray(data?.backups) ? data.backups : [];
  latest.backups = backups;
  const body = $('backups-body');
  if (!backups.length) {
    body.replaceChildren(h('p', { class: 'empty' }, 'No backup yet.'));
    return;
  }
  const newest = [...backups].reverse().slice(0, BACKUPS_SHOWN);
  fill(
    body,
    table(
      'backups-table',
      ['Taken', 'Backup', 'Kind', 'Size', 'Encrypted', 'Verification'],
      newest.map((b) => ({
        attrs: { 'data-id': b.backupId, class: b.backupId === highlightBackup ? 'fresh-row' : null },
        cells: [
          timeEl(b.createdAt),
          h('td', null, h('code', null, b.backupId)),
          b.kind,
          num(formatBytes(b.bytes)),
          h('td', null, b.encrypted ? badge('yes', 'encrypted') : badge('no', 'plain')),
          h('td', null, verificationCell(b.verification)),
        ],
      })),
    ),
    backups.length > BACKUPS_SHOWN
      ? h('p', { class: 'muted small' }, `showing the newest ${BACKUPS_SHOWN} of ${backups.length}`)
      : null,
  );
}

function verificationCell(v) {
  if (!v) return badge('none', 'not verified');
  return h(
    'span',
    { class: 'verification' },
    badge(v.ok ? 'ok' : 'fail', `${v.level} ${v.ok ? 'OK' : 'FAILED'}`),
    h('span', { class: 'muted small' }, ' ', timeEl(v.at)),
  );
}

function progressText(p) {
  if (!p || typeof p !== 'object') return '';
  const parts = [p.phase ?? 'working'];
  if (typeof p.bytes === 'number') {
    parts.push(
      typeof p.totalBytes === 'number' && p.totalBytes > 0
        ? `${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)} (${Math.min(100, Math.round((p.bytes / p.totalBytes) * 100))}%)`
        : formatBytes(p.bytes),
    );
  }
  if (p.detail) parts.push(String(p.detail));
  return parts.join(' · ');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function backupNow(button) {
  const t = session.target;
  await withBusy(button, async () => {
    setStatus(`queuing a full backup of ${t}…`, 'busy');
    const job = await api(targetPath(t, '/backups'), { method: 'POST', body: { kind: 'full', reason: 'console' } });
    const queue = job?.queue ?? 'backup';
    const jobId = job?.jobId;
    if (!jobId) throw new Error('the server did not return a job id');
    setStatus(`backup of ${t} queued (job ${jobId})`, 'busy');
    let misses = 0;
    for (;;) {
      if (!session.token) return;
      await sleep(JOB_POLL_MS);
      let st;
      try {
        st = await api(`/api/jobs/${enc(queue)}/${enc(jobId)}`);
      } catch (err) {
        if (handleAuthLoss(err)) return;
        if (++misses >= 10) throw err;
        setStatus(`backup of ${t} (job ${jobId}): ${errorText(err)} — retrying`, 'busy');
        continue;
      }
      if (st.state === 'completed') {
        const id = st.result?.backupId ?? st.result?.id ?? '';
        highlightBackup = id;
        setStatus(`backup of ${t} completed${id ? `: ${id}` : ''}`, 'ok');
        rendered.delete('backups');
        rendered.delete('freshness');
        await refreshAll();
        return;
      }
      if (st.state === 'failed') {
        const e = st.error;
        setStatus(`backup of ${t} failed: ${e?.message ?? 'unknown error'}${e?.code ? ` (${e.code})` : ''}`, 'error');
        await refreshAll();
        return;
      }
      if (st.state === 'unknown') {
        if (++misses >= 10) throw new Error(`job ${jobId} is unknown to the ${queue} queue`);
      } else {
        misses = 0;
      }
      const progress = progressText(st.progress);
      setStatus(`backup of ${t} (job ${jobId}): ${st.state}${progress ? ` — ${progress}` : ''}`, 'busy');
    }
  });
}

/* ------------------------------------------------------------------ queues */

function renderQueues(data) {
  renderQueueBoardLink(data?.mode);
  const queues = Array.isArray(data?.queues) ? data.queues : [];
  const body = $('queues-body');
  const mode = h(
    'p',
    { class: 'muted', id: 'queue-mode' },
    data?.mode === 'distributed'
      ? 'distributed mode (shared job store)'
      : `${data?.mode ?? 'unknown'} mode (in-process)`,
  );
  if (!queues.length) {
    body.replaceChildren(mode, h('p', { class: 'empty' }, 'No queue reported.'));
    return;
  }
  body.replaceChildren(
    mode,
    table(
      'queues-table',
      ['Queue', 'Waiting', 'Active', 'Completed', 'Failed', 'Delayed'],
      queues.map((q) => ({
        attrs: { 'data-queue': q.name },
        cells: [
          h('td', null, h('strong', null, q.name)),
          num(q.waiting),
          num(q.active),
          num(q.completed),
          h('td', { class: `num${q.failed > 0 ? ' over' : ''}` }, String(q.failed ?? '—')),
          num(q.delayed),
        ],
      })),
      'compact',
    ),
  );
}

/* ------------------------------------------------------------------ queue board */

const BOARD_URL = '/admin/queues/';
/** The pending or settled POST /api/session of this sign-in; null until asked for, or after it failed. */
let boardSession = null;

/**
 * The browser follows the board's link without the Authorization header, so the board reads
 * the token from a cookie that POST /api/session sets (HttpOnly, sent only to the board).
 */
function boardSessionReady() {
  if (!boardSession) {
    boardSession = api('/api/session', { method: 'POST', body: {} }).catch((err) => {
      boardSession = null;
      throw err;
    });
  }
  return boardSession;
}

/** The admin's link to the queue board, which is only mounted in distributed mode. */
function renderQueueBoardLink(mode) {
  const box = $('queue-actions');
  if (mode !== 'distributed' || !isAdmin()) {
    box.replaceChildren();
    return;
  }
  if ($('queue-board')) return;
  box.replaceChildren(
    h('a', { id: 'queue-board', href: BOARD_URL, class: 'link-button', onclick: openQueueBoard }, 'Queue board ↗'),
  );
  // Set now, so the link also works when opened in a new tab.
  boardSessionReady().catch((err) => {
    if (!handleAuthLoss(err)) setStatus(`queue board: ${errorText(err)}`, 'error');
  });
}

async function openQueueBoard(ev) {
  // A modified click opens the board elsewhere, with the cookie set when the link was shown.
  if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  ev.preventDefault();
  try {
    await boardSessionReady();
    window.location.assign(BOARD_URL);
  } catch (err) {
    if (!handleAuthLoss(err)) setStatus(`cannot open the queue board: ${errorText(err)}`, 'error');
  }
}

/* ------------------------------------------------------------------ role-dependent controls */

function buildActions() {
  const ks = $('ks-actions');
  ks.replaceChildren();
  if (canOperate()) {
    ks.append(
      h(
        'div',
        { class: 'ks-form' },
        h('label', { for: 'ks-reason' }, 'Reason'),
        h('input', {
          id: 'ks-reason',
          type: 'text',
          maxlength: 500,
          placeholder: 'why, for the record',
          autocomplete: 'off',
        }),
        h(
          'div',
          { class: 'button-row' },
          h(
            'button',
            {
              type: 'button',
              id: 'ks-activate',
              class: 'danger',
              onclick: (ev) => activateKillSwitch(ev.currentTarget),
            },
            'Activate',
          ),
          h(
            'button',
            {
              type: 'button',
              id: 'ks-request',
              class: 'secondary',
              onclick: (ev) => requestDeactivation(ev.currentTarget),
            },
            'Request deactivation',
          ),
        ),
        h(
          'p',
          { class: 'muted small' },
          'Activation halts trading at once. Deactivation needs the approval of someone else.',
        ),
      ),
    );
    $('ks-reason').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') ev.preventDefault();
    });
  }

  const backups = $('backup-actions');
  backups.replaceChildren();
  if (canOperate()) {
    backups.append(
      h(
        'button',
        { type: 'button', id: 'backup-now', class: 'primary', onclick: (ev) => backupNow(ev.currentTarget) },
        'Back up now',
      ),
    );
  }

  // The queue board's link waits for GET /api/queues to say the mode (renderQueueBoardLink).
  $('queue-actions').replaceChildren();
}

/* ------------------------------------------------------------------ start */

async function start() {
  const stored = sessionStorage.getItem(TOKEN_KEY);
  if (!stored) {
    showSignin();
    return;
  }
  $('signin-view').hidden = true;
  setStatus('signing in…', 'busy', 'auth');
  try {
    await signIn(stored);
    clearStatus('auth');
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    session.token = '';
    session.me = null;
    showSignin();
    if (err instanceof ApiError && err.status === 401) clearStatus('auth');
    else setStatus(signinMessage(err), 'error', 'auth');
  }
}

start();
