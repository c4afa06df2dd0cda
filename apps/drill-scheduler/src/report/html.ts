// A drill report as one self-contained HTML page (no script, no external resource): the
// runbook's table from real runs, a timeline of the steps, the RTO/RPO history of earlier
// drills, and the evidence.
import { DRILLS, type DrillReport, formatSeconds, layout, type ObjectStore } from '@lifeboat/domain';

/** What the history keeps of an earlier report. */
export interface DrillSummary {
  id: string;
  drill: DrillReport['drill'];
  started_at: string;
  verdict: DrillReport['verdict'];
  rto_seconds: number | null;
  rto_target: number | null;
  rpo_seconds: number | null;
  rpo_target: number | null;
}

const HISTORY_LIMIT = 200;

/** The newest reports of a target (full-simulation's drills are stored one by one as well). */
export async function drillHistory(store: ObjectStore, target: string): Promise<DrillSummary[]> {
  const keys: string[] = [];
  for await (const o of store.list(layout.drillsPrefix(target))) if (o.key.endsWith('.json')) keys.push(o.key);
  keys.sort();
  const out: DrillSummary[] = [];
  for (const key of keys.slice(-HISTORY_LIMIT)) {
    try {
      const r = JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as DrillReport;
      if (r.drill !== 'full-simulation') out.push(summaryOf(r));
    } catch {
      // An unreadable report is left out of the history, not fatal to this one.
    }
  }
  return out;
}

const esc = (s: unknown): string =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

const secs = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : formatSeconds(v));

function summaryOf(r: DrillReport): DrillSummary {
  return {
    id: r.id,
    drill: r.drill,
    started_at: r.started_at,
    verdict: r.verdict,
    rto_seconds: r.measured.rto_seconds,
    rto_target: r.targets.rto_seconds,
    rpo_seconds: r.measured.rpo_seconds,
    rpo_target: r.targets.rpo_seconds,
  };
}

/** The runbook's table: the newest run of every drill held to an RTO, this one's first. */
function runbookTable(report: DrillReport, history: DrillSummary[]): string {
  const newest = new Map<string, DrillSummary>();
  for (const h of history) newest.set(h.drill, h);
  for (const r of report.drills ?? [report]) if (r.drill !== 'full-simulation') newest.set(r.drill, summaryOf(r));
  const rows = Object.values(DRILLS)
    .filter((d) => d.rto !== null)
    .map((d) => {
      const run = newest.get(d.name);
      const status = !run ? 'not run yet' : run.verdict === 'PASS' ? '✓ PASS' : '✗ FAIL';
      return `<tr><td>${esc(d.scenario)}</td><td>${esc(secs(run?.rto_target ?? null))}</td><td>${esc(secs(run?.rto_seconds))}</td><td class="${run?.verdict ?? 'none'}">${status}</td><td>${run ? esc(run.started_at) : ''}</td></tr>`;
    });
  return `<table id="runbook-table"><thead><tr><th>Scenario</th><th>Target RTO</th><th>Actual RTO</th><th>Status</th><th>Run</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

const COLORS: Record<string, string> = { PASSED: '#2e7d32', FAILED: '#c62828', SKIPPED: '#9e9e9e' };

/** The steps on a time axis, one bar each (a Gantt chart in SVG). */
function timeline(report: DrillReport): string {
  const t0 = Date.parse(report.started_at);
  const total = Math.max(1, Date.parse(report.finished_at) - t0);
  const rowH = 22;
  const labelW = 230;
  const chartW = 640;
  const bars = report.steps.map((s, i) => {
    const x = labelW + (chartW * (Date.parse(s.started_at) - t0)) / total;
    const w = Math.max(2, (chartW * s.duration_ms) / total);
    const y = 10 + i * rowH;
    return `<text x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(s.name)}</text><rect class="bar" x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${COLORS[s.status] ?? '#555'}"><title>${esc(`${s.name}: ${s.status}, ${(s.duration_ms / 1000).toFixed(2)} s — ${s.detail}`)}</title></rect><text x="${(x + w + 4).toFixed(1)}" y="${y + 14}" class="dur">${(s.duration_ms / 1000).toFixed(1)} s</text>`;
  });
  const height = 20 + report.steps.length * rowH;
  return `<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="${labelW + chartW + 80}" height="${height}" role="img" aria-label="timeline of the drill's steps">${bars.join('')}<line x1="${labelW}" y1="4" x2="${labelW}" y2="${height - 4}" stroke="#888"/></svg>`;
}

/** RTO of each earlier run of the drills shown, against their target, as dots over time. */
function historyChart(history: DrillSummary[]): string {
  const runs = history.filter((h) => h.rto_seconds !== null);
  if (runs.length === 0) return '<p>No earlier run measured an RTO yet.</p>';
  const w = 720;
  const h = 220;
  const pad = 40;
  const times = runs.map((r) => Date.parse(r.started_at));
  const tMin = Math.min(...times);
  const tMax = Math.max(...times, tMin + 1);
  const ratio = (r: DrillSummary) =>
    (r.rto_seconds as number) / Math.max(1e-9, r.rto_target ?? (r.rto_seconds as number));
  const yMax = Math.max(1.2, ...runs.map(ratio));
  const y = (v: number) => h - pad - ((h - 2 * pad) * v) / yMax;
  const dots = runs.map((r) => {
    const x = pad + ((w - 2 * pad) * (Date.parse(r.started_at) - tMin)) / (tMax - tMin);
    return `<circle cx="${x.toFixed(1)}" cy="${y(ratio(r)).toFixed(1)}" r="4" fill="${r.verdict === 'PASS' ? '#2e7d32' : '#c62828'}"><title>${esc(`${r.drill} ${r.started_at}: RTO ${secs(r.rto_seconds)} of ${secs(r.rto_target)}`)}</title></circle>`;
  });
  return `<svg id="history" xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="RTO of earlier drills as a share of their target"><line x1="${pad}" y1="${y(1).toFixed(1)}" x2="${w - pad}" y2="${y(1).toFixed(1)}" stroke="#c62828" stroke-dasharray="4"/><text x="${pad}" y="${(y(1) - 4).toFixed(1)}" class="dur">target</text>${dots.join('')}<text x="${pad}" y="${h - 12}" class="dur">RTO ÷ target, ${runs.length} run(s) from ${esc(new Date(tMin).toISOString().slice(0, 10))} to ${esc(new Date(tMax).toISOString().slice(0, 10))}</text></svg>`;
}

function historyTable(history: DrillSummary[]): string {
  const rows = [...history]
    .reverse()
    .slice(0, 50)
    .map(
      (h) =>
        `<tr><td>${esc(h.started_at)}</td><td>${esc(h.drill)}</td><td class="${h.verdict}">${h.verdict}</td><td>${esc(secs(h.rto_seconds))} / ${esc(secs(h.rto_target))}</td><td>${esc(secs(h.rpo_seconds))} / ${esc(secs(h.rpo_target))}</td></tr>`,
    );
  return `<table id="history-table"><thead><tr><th>Started</th><th>Drill</th><th>Verdict</th><th>RTO / target</th><th>RPO / target</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function stepsTable(report: DrillReport): string {
  const rows = report.steps.map(
    (s) =>
      `<tr><td>${esc(s.name)}</td><td class="${s.status}">${s.status}</td><td>${(s.duration_ms / 1000).toFixed(2)} s</td><td>${esc(s.detail)}</td></tr>`,
  );
  return `<table><thead><tr><th>Step</th><th>Status</th><th>Took</th><th>Detail</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function renderDrillHtml(report: DrillReport, history: DrillSummary[]): string {
  const children = report.drills ?? [];
  const measured = [
    ...(children.length
      ? [`${children.length} drills: ${children.filter((r) => r.verdict === 'PASS').length} passed`]
      : []),
    ...(report.measured.rto_seconds !== null || report.targets.rto_seconds !== null
      ? [`RTO ${secs(report.measured.rto_seconds)} (target ${secs(report.targets.rto_seconds)})`]
      : []),
    ...(report.measured.rto_shadow_seconds !== undefined
      ? [`healthy in shadow mode after ${secs(report.measured.rto_shadow_seconds)}`]
      : []),
    ...Object.entries(report.measured.rpo).map(
      ([k, v]) => `RPO ${k} ${secs(v)} (target ${secs(report.targets.rpo[k as keyof typeof report.targets.rpo])})`,
    ),
  ];
  const sections = children
    .map(
      (r) =>
        `<section class="child"><h3>${esc(r.title)} — <span class="${r.verdict}">${r.verdict}</span></h3><p>${esc(r.hypothesis)}</p>${r.failure ? `<p class="FAIL">${esc(r.failure)}</p>` : ''}${stepsTable(r)}</section>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drill ${esc(report.drill)} of ${esc(report.target)}: ${report.verdict}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}.PASS,.PASSED{color:#2e7d32;font-weight:600}.FAIL,.FAILED{color:#c62828;font-weight:600}.SKIPPED{color:#777}
svg text{font:12px system-ui,sans-serif}.dur{fill:#555}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}
.child{border-left:3px solid #ddd;padding-left:1em;margin:1em 0}
</style></head><body>
<h1>Drill <code>${esc(report.drill)}</code> of <code>${esc(report.target)}</code>: <span class="${report.verdict}">${report.verdict}</span></h1>
<p>${esc(report.started_at)} → ${esc(report.finished_at)} · report <code>${esc(report.id)}</code></p>
<p><strong>Hypothesis.</strong> ${esc(report.hypothesis)}</p>
${report.failure ? `<p class="FAIL">${esc(report.failure)}</p>` : ''}
<p>${measured.map(esc).join(' · ')}</p>
<h2>RTO/RPO against the runbook's targets</h2>
${runbookTable(report, history)}
<h2>Timeline</h2>
${timeline(report)}
${stepsTable(report)}
${sections}
<h2>History</h2>
${historyChart(history)}
${historyTable(history)}
<h2>Evidence</h2>
<pre>${esc(JSON.stringify(report.evidence, null, 2))}</pre>
</body></html>
`;
}
