// The annual DR audit (annual-audit): the year so far gathered into one report, stored as
// JSON and HTML beside the target's records; the drill fails with the report's findings, so
// the evidence that does not hold reaches the webhook like any failed drill.
import { openCatalogFromEnv } from '@lifeboat/adapters';
import { type AuditChainSummary, buildAuditReport, compactUtc, layout } from '@lifeboat/domain';
import { auditChainSummary, gatherAuditRecords } from '../audit-report/gather.js';
import { renderAuditReportHtml } from '../audit-report/html.js';
import { check } from '../recorder.js';
import type { DrillRun, Measured } from './common.js';

export async function annualAudit(run: DrillRun): Promise<Measured> {
  const { runtime } = run.ctx;
  const target = run.target.name;
  // The year the drill runs in, up to its start: the scheduled run (first Monday of October)
  // leaves the last quarter to the next year's report, which covers it in full.
  const year = run.disasterAt.getUTCFullYear();

  const { records } = await run.rec.step('gather', async () => {
    const records = await gatherAuditRecords({ runtime, target, year, now: run.disasterAt });
    const reachable = records.locations.filter((l) => l.reachable).length;
    return {
      records,
      detail: `${records.drills.length} drill reports, ${records.restores.length} restore records, ${records.killSwitchEvents.length} kill-switch events; ${reachable} of ${records.locations.length} locations listed`,
    };
  });

  const { chain } = await run.rec.step('verify-audit-trail', async () => {
    // A broken chain is a finding of the report, judged last: the report is written either way.
    const chain: AuditChainSummary = await auditChainSummary(runtime.store, await openCatalogFromEnv(run.env));
    const catalog = chain.catalog ? `; catalog ${chain.catalog.differences} difference(s)` : '';
    return {
      chain,
      detail: chain.ok
        ? `${chain.entries} entries, chain intact${catalog}`
        : `BROKEN at entry ${chain.firstBroken?.seq} in the ${chain.firstBroken?.where}: ${chain.firstBroken?.reason}`,
      evidence: { auditChain: chain },
    };
  });

  const { report } = await run.rec.step('write-report', async () => {
    const report = buildAuditReport({ ...records, auditChain: chain });
    const stamp = compactUtc(run.disasterAt);
    const json = layout.auditReport(target, year, stamp);
    const html = layout.auditReportHtml(target, year, stamp);
    await runtime.store.put(json, Buffer.from(`${JSON.stringify(report, null, 1)}\n`));
    await runtime.store.put(html, Buffer.from(renderAuditReportHtml(report)));
    return {
      report,
      detail: `${report.verdict} (${report.findings.length} findings): ${json}`,
      evidence: {
        auditReport: { key: json, html, verdict: report.verdict, findings: report.findings.map((f) => f.text) },
      },
    };
  });

  await run.rec.step('findings', async () => {
    check(
      report.verdict === 'CLEAN',
      'findings',
      `${report.findings.length} finding(s): ${report.findings.map((f) => f.text).join(' ')}`,
    );
    const s = report.summary;
    return {
      detail: `none: ${s.runs} drill runs of ${s.scheduled} scheduled, every failure followed by a pass, every location covered, the audit trail intact`,
    };
  });
  return { rto_seconds: null, rpo: {} };
}
