// The drill-scheduler app: the drill handler and the report page, for the BullMQ worker in
// main.ts and for the CLI's embedded mode.
export {
  type AuditGatherOptions,
  type AuditRecords,
  auditChainSummary,
  auditReportFor,
  gatherAuditRecords,
  summarizeVerification,
} from './audit-report/gather.js';
export { renderAuditReportHtml } from './audit-report/html.js';
export * from './context.js';
export { parseDrillRequest, runDrill, SIMULATION_ORDER } from './handlers/drill.js';
export { type DrillSummary, drillHistory, renderDrillHtml } from './report/html.js';
