// The annual audit report as one self-contained HTML page (no script, no external resource),
// for an auditor to read or print: the verdict and findings first, then the drills against
// their schedule, backup coverage per location, failures and what followed, restores,
// kill-switch events and the audit trail's verification.
import { type AuditReport, type AuditStat, formatSeconds } from '@lifeboat/domain';

const esc = (s: unknown): string =>
  String(s).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );

const secs = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : formatSeconds(v));
const num = (v: number | null | undefined): string => (v === null || v === undefined ? '—' : String(v));
const day = (iso: string | null | undefined): string => (iso ? iso.slice(0, 10) : '—');
const when = (iso: string | null | undefined): string => (iso ? iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z') : '—');

/** `41s / 10s (target 30s)`: worst, then median, against the target. */
function stat(s: AuditStat & { target: number | null }): string {
  if (s.measured === 0) return s.target === null ? '—' : `— (target ${secs(s.target)})`;
  return `${secs(s.worst)} / ${secs(s.median)}${s.target === null ? '' : ` (target ${secs(s.target)})`}`;
}

function findings(report: AuditReport): string {
  if (report.findings.length === 0) return '<p id="findings" class="CLEAN">No findings.</p>';
  const items = report.findings.map((f) => `<li data-kind="${esc(f.kind)}">${esc(f.text)}</li>`);
  return `<ol id="findings">${items.join('')}</ol>`;
}

function drillsTable(report: AuditReport): string {
  const rows = report.drills.map((d) => {
    const targets = d.targetsMet === null ? '—' : `${d.targetsMet} of ${d.runs}`;
    const runs = d.inSimulation ? `${d.runs} (${d.inSimulation} in full-simulation)` : String(d.runs);
    const missed = d.missed ? `<span class="FAIL">${d.missed}</span>` : '0';
    const last = d.lastRun
      ? `<span class="${esc(d.lastRun.verdict)}">${esc(d.lastRun.verdict)}</span> ${esc(when(d.lastRun.at))}`
      : 'never';
    return `<tr data-drill="${esc(d.drill)}"><td>${esc(d.scenario)}</td><td><code>${esc(d.drill)}</code></td><td><code>${esc(d.schedule ?? 'off')}</code></td><td class="n">${d.scheduled}</td><td class="n">${esc(runs)}</td><td class="n">${missed}</td><td class="n">${d.passed}</td><td class="n">${d.failed ? `<span class="FAIL">${d.failed}</span>` : '0'}</td><td class="n">${esc(targets)}</td><td>${esc(stat(d.rto))}</td><td>${esc(stat(d.rpo))}</td><td>${last}</td></tr>`;
  });
  return `<table id="drills-table"><thead><tr><th>Scenario</th><th>Drill</th><th>Schedule (UTC)</th><th>Scheduled</th><th>Runs</th><th>Missed</th><th>Passed</th><th>Failed</th><th>Targets met</th><th>RTO worst / median</th><th>RPO worst / median</th><th>Last run</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** One mark per day of the period: green with a backup, red without. */
function coverageStrip(report: AuditReport, without: readonly string[], name: string): string {
  const missing = new Set(without);
  const start = Date.parse(report.period.start);
  const w = 2;
  const marks: string[] = [];
  for (let i = 0; i < report.period.days; i++) {
    const d = new Date(start + i * 86_400_000).toISOString().slice(0, 10);
    marks.push(`<rect x="${i * w}" y="0" width="${w}" height="14" class="${missing.has(d) ? 'gap' : 'ok'}"/>`);
  }
  return `<svg class="coverage" xmlns="http://www.w3.org/2000/svg" width="${report.period.days * w}" height="14" role="img" aria-label="${esc(`days of ${report.period.start.slice(0, 10)} to ${report.period.end.slice(0, 10)} with a backup at ${name}`)}">${marks.join('')}</svg>`;
}

function locationsTable(report: AuditReport): string {
  if (report.locations.length === 0) return '<p>No location was listed.</p>';
  const rows = report.locations.map((l) => {
    const name = `${esc(l.location)}${l.primary && l.location !== 'primary' ? ' (primary)' : ''}`;
    if (!l.reachable) {
      return `<tr data-location="${esc(l.location)}"><td>${name}</td><td class="FAIL">unreachable</td><td colspan="6">${esc(l.problem ?? '')}</td></tr>`;
    }
    const gap = l.longestGap
      ? `${esc(formatSeconds(l.longestGap.seconds))} (${esc(day(l.longestGap.from))} → ${esc(day(l.longestGap.to))})`
      : '—';
    const verification = `${num(l.verified)} verified, ${num(l.failedVerification)} failed, ${num(l.unverified)} not verified${l.pruned ? `, ${l.pruned} pruned since` : ''}`;
    return `<tr data-location="${esc(l.location)}"><td>${name}</td><td class="PASS">reachable</td><td class="n">${num(l.backups)}</td><td class="n">${num(l.daysCovered)} of ${l.days}</td><td>${gap}</td><td>${esc(verification)}</td><td>${esc(when(l.newest))}</td><td>${coverageStrip(report, l.daysWithout ?? [], l.location)}</td></tr>`;
  });
  return `<table id="locations-table"><thead><tr><th>Location</th><th>State</th><th>Backups</th><th>Days covered</th><th>Longest without</th><th>Verification</th><th>Newest</th><th>Coverage</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function failuresTable(report: AuditReport): string {
  if (report.failures.length === 0) return '<p id="failures-table">No drill or restore failed.</p>';
  const rows = report.failures.map((f) => {
    const what = f.kind === 'drill' ? `drill ${f.name}` : `restore ${f.name} into ${f.destination}`;
    const next = f.next
      ? `<span class="${esc(f.next.outcome)}">${esc(f.next.outcome)}</span> ${esc(when(f.next.at))}, ${esc(formatSeconds(f.next.afterSeconds))} later`
      : 'none yet';
    const pass = f.nextPass
      ? `${esc(when(f.nextPass.at))}, ${esc(formatSeconds(f.nextPass.afterSeconds))} later`
      : '<span class="FAIL">not since</span>';
    return `<tr><td>${esc(when(f.at))}</td><td>${esc(what)}${f.partOf ? ` <small>(in ${esc(f.partOf)})</small>` : ''}</td><td>${esc(f.why)}</td><td>${next}</td><td>${pass}</td></tr>`;
  });
  return `<table id="failures-table"><thead><tr><th>When</th><th>What</th><th>Why</th><th>Next run</th><th>Passed again</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function restoresSection(report: AuditReport): string {
  const r = report.restores;
  const rows = Object.entries(r.byScenario).map(
    ([scenario, s]) =>
      `<tr><td><code>${esc(scenario)}</code></td><td class="n">${s.count}</td><td class="n">${s.completed}</td><td class="n">${s.failed}</td></tr>`,
  );
  const toReady = `ready to trade: worst ${secs(r.toReady.worst)}, median ${secs(r.toReady.median)} (${r.toReady.measured} measured)`;
  return `<p>${r.count} restores: ${r.byDestination.production} into production, ${r.byDestination.sandbox} into sandboxes; ${esc(toReady)}.</p><table id="restores-table"><thead><tr><th>Scenario</th><th>Restores</th><th>Completed</th><th>Failed</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function killSwitchSection(report: AuditReport): string {
  const k = report.killSwitch;
  if (k.count === 0) return '<p id="kill-switch-table">No kill-switch event in the audit trail.</p>';
  const byAction = Object.entries(k.byAction).map(
    ([action, o]) =>
      `<tr><td><code>${esc(action)}</code></td><td class="n">${o.ok}</td><td class="n">${o.refused}</td><td class="n">${o.failed}</td></tr>`,
  );
  const events = k.events.map(
    (e) =>
      `<tr><td class="n">${e.seq}</td><td>${esc(when(e.at))}</td><td>${esc(e.actor)}</td><td><code>${esc(e.action)}</code></td><td>${esc(e.outcome)}</td><td>${esc(e.reason ?? '')}</td></tr>`,
  );
  return `<table id="kill-switch-table"><thead><tr><th>Action</th><th>ok</th><th>refused</th><th>failed</th></tr></thead><tbody>${byAction.join('')}</tbody></table><table id="kill-switch-events"><thead><tr><th>Entry</th><th>At</th><th>Who</th><th>Action</th><th>Outcome</th><th>Reason</th></tr></thead><tbody>${events.join('')}</tbody></table>`;
}

function chainSection(report: AuditReport): string {
  const c = report.auditChain;
  const catalog = c.catalog
    ? ` The catalog's copy (${esc(c.catalog.location)}, ${c.catalog.rows} rows) was compared: ${c.catalog.differences} difference(s).`
    : '';
  const verdict = c.ok
    ? `<span class="PASS">intact</span>: ${c.entries} entries in ${esc(c.location)}.`
    : `<span class="FAIL">BROKEN</span>${c.firstBroken ? ` at entry ${c.firstBroken.seq} in the ${esc(c.firstBroken.where)}: ${esc(c.firstBroken.reason)}` : ''} (${c.entries} entries in ${esc(c.location)}).`;
  return `<p id="audit-chain">The hash chain is ${verdict}${catalog}</p>`;
}

export function renderAuditReportHtml(report: AuditReport): string {
  const s = report.summary;
  const period = `${day(report.period.start)} to ${report.period.complete ? day(new Date(Date.parse(report.period.end) - 1).toISOString()) : `${when(report.period.end)} (the year so far)`}`;
  const unreadable = report.unreadable.length
    ? `<h2>Records that could not be read</h2><ul id="unreadable">${report.unreadable.map((u) => `<li><code>${esc(u.key)}</code>: ${esc(u.problem)}</li>`).join('')}</ul>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DR audit ${report.year} of ${esc(report.target)}: ${report.verdict}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}.PASS,.CLEAN,.COMPLETED{color:#2e7d32;font-weight:600}.FAIL,.FAILED,.FINDINGS{color:#c62828;font-weight:600}
#findings li{margin:0.3em 0}svg.coverage rect.ok{fill:#2e7d32}svg.coverage rect.gap{fill:#c62828}
@media print{body{margin:0}}
</style></head><body>
<h1>DR audit ${report.year} of <code>${esc(report.target)}</code>: <span id="verdict" class="${report.verdict}">${report.verdict}</span></h1>
<p>Period ${esc(period)} (UTC, ${report.period.days} days) · generated ${esc(when(report.generatedAt))} · <code>${esc(report.format)}</code></p>
<p id="summary">${s.runs} drill runs of ${s.scheduled} scheduled (${s.missed} missed): ${s.passed} passed, ${s.failed} failed · ${s.restores} restores (${s.restoresFailed} failed) · ${s.killSwitchEvents} kill-switch events</p>
<h2>Findings</h2>
${findings(report)}
<h2>Drills against their schedule</h2>
<p>Runs within a full-simulation count as runs of their drill. A scheduled slot is missed when no run of the drill started before the next slot. RTO is start to ready to trade (or to halted); RPO is the order history's. Medians of an even count are the mean of the two middle values.</p>
${drillsTable(report)}
<h2>Backups per location</h2>
<p>Backups removed by retention since are counted from the audit trail's record of them. A location may go at most ${s.maxBackupGapDays} days without a backup.</p>
${locationsTable(report)}
<h2>Failures and what followed</h2>
${failuresTable(report)}
<h2>Restores</h2>
${restoresSection(report)}
<h2>Kill-switch events</h2>
${killSwitchSection(report)}
<h2>Audit trail</h2>
${chainSection(report)}
${unreadable}
</body></html>
`;
}
