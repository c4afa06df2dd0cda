// The runbook's drills: what each one claims (its hypothesis), what it does, which recovery
// target it is held to, and when it runs by default (its testing schedule, in UTC).
import type { DrillName, RpoTargetName, RtoTargetName } from '../schemas/drill.js';

export interface DrillDefinition {
  name: DrillName;
  title: string;
  /** The row of the runbook's table it fills (Scenario | Target RTO | Actual RTO | Status). */
  scenario: string;
  hypothesis: string;
  /** What the drill does, in order. */
  steps: readonly string[];
  /** The RTO it is held to; null when the drill measures no recovery time. */
  rto: RtoTargetName | null;
  /** The RPOs it measures. */
  rpo: readonly RpoTargetName[];
  /** When it runs by default: cron, UTC (`DOW#n` is the n-th weekday of the month). */
  schedule: string;
  /** Its runbook line. */
  cadence: string;
}

export const DRILLS: Readonly<Record<DrillName, DrillDefinition>> = {
  'kill-switch': {
    name: 'kill-switch',
    title: 'Kill switch activation',
    scenario: 'Kill Switch Activation',
    hypothesis:
      'Activating the kill switch halts trading within the kill-switch RTO: the target reports it ON and places no new order.',
    steps: ['activate the kill switch', 'confirm the target reports it ON', 'confirm no order is placed after it'],
    rto: 'killSwitch',
    rpo: [],
    schedule: '0 2 * * MON',
    cadence: 'weekly, Monday',
  },
  'shadow-failover': {
    name: 'shadow-failover',
    title: 'Shadow mode failover',
    scenario: 'Shadow Mode Recovery',
    hypothesis:
      'After the trading process dies, a copy restarted from the state files is healthy in shadow mode with the kill switch ON within the shadow-mode RTO.',
    steps: ['copy the target into a sandbox', 'start it, then kill it', 'restart it in shadow mode', 'wait for health'],
    rto: 'shadowMode',
    rpo: [],
    schedule: '0 2 * * WED',
    cadence: 'weekly, Wednesday',
  },
  reconciliation: {
    name: 'reconciliation',
    title: 'Reconciliation verification',
    scenario: 'Reconciliation',
    hypothesis: "The target's books agree with the exchange: the reconciliation passes and its report is stored.",
    steps: ["reconcile the target's books with the exchange (read only)", 'store the report'],
    rto: null,
    rpo: [],
    schedule: '0 2 * * FRI',
    cadence: 'weekly, Friday',
  },
  'backup-verify': {
    name: 'backup-verify',
    title: 'Backup verification',
    scenario: 'Backup Verification',
    hypothesis:
      "The newest backup is whole: every entry's checksum matches, it decrypts, its database passes the engine's integrity check with the manifest's row counts, and it is younger than the order-history RPO allows.",
    steps: ['pick the newest backup', 'verify it in full'],
    rto: null,
    rpo: ['orderHistory'],
    schedule: '30 1 * * *',
    cadence: 'daily',
  },
  'database-restore': {
    name: 'database-restore',
    title: 'Database restore from backup',
    scenario: 'Database Restore',
    hypothesis:
      'With the trading database corrupted, a sandbox restored from the newest backup passes its checks and reconciles with the exchange within the database-restore RTO, losing no more order history than the RPO allows.',
    steps: [
      'pick the newest backup (take one if there is none)',
      'restore the database and state into a sandbox',
      "check the database against the backup's manifest",
      'reconcile the sandbox books with the exchange, correcting them',
      'measure the RTO and RPO',
    ],
    rto: 'databaseRestore',
    rpo: ['orderHistory'],
    schedule: '0 3 * * MON#1',
    cadence: 'monthly, first Monday',
  },
  'cold-restore': {
    name: 'cold-restore',
    title: 'Complete cold restore',
    scenario: 'Complete Rebuild',
    hypothesis:
      'With the host gone, an empty sandbox gets config, database, state, reports and audit logs back from the newest backup and reconciles within the complete-rebuild RTO.',
    steps: [
      'pick the newest backup (take one if there is none)',
      'restore everything onto an empty sandbox',
      'start a copy of the target there in shadow mode (when the target says how)',
      'reconcile the sandbox books with the exchange, correcting them',
      'measure the RTO and the RPO of orders, audit logs and reports',
    ],
    rto: 'completeRebuild',
    rpo: ['orderHistory', 'auditLogs', 'reports'],
    schedule: '0 3 * * MON#3',
    cadence: 'monthly, third Monday',
  },
  'full-simulation': {
    name: 'full-simulation',
    title: 'Full DR simulation',
    scenario: 'Full DR Simulation',
    hypothesis: 'Every drill of the catalog, in turn, holds its hypothesis.',
    // The restores first, while the newest backup is youngest (SIMULATION_ORDER).
    steps: [
      'backup-verify',
      'database-restore',
      'cold-restore',
      'reconciliation',
      'kill-switch',
      'shadow-failover',
      'vendor-connectivity-loss',
    ],
    rto: null,
    rpo: [],
    schedule: '0 4 * JAN,APR,JUL,OCT MON#1',
    cadence: 'quarterly, first Monday of January, April, July and October',
  },
  'vendor-connectivity-loss': {
    name: 'vendor-connectivity-loss',
    title: 'Vendor connectivity loss',
    scenario: 'Vendor Connectivity Loss',
    hypothesis:
      'With the exchange unreachable, the kill switch engages within the kill-switch RTO and reconciliation fails closed: nothing is judged ready to trade.',
    steps: [
      'copy the target into a sandbox and cut its exchange',
      'engage the kill switch',
      'reconcile against the unreachable exchange',
      'confirm the reconciliation is not ready to trade',
    ],
    rto: 'killSwitch',
    rpo: [],
    schedule: '0 5 * JUL MON#1',
    cadence: 'yearly, first Monday of July (the runbook’s Q3 test)',
  },
  'multi-region-failover': {
    name: 'multi-region-failover',
    title: 'Multi-region failover',
    scenario: 'Multi-Region Failover',
    hypothesis:
      'With the primary backup location unavailable, a sandbox restored from a verified copy in another location passes its checks and reconciles with the exchange within the database-restore RTO.',
    steps: [
      'make the primary location unavailable to the restore',
      'pick the newest backup with a verified copy in another location',
      'restore the database and state into a sandbox from that copy',
      'reconcile the sandbox books with the exchange, correcting them',
      'measure the RTO and RPO',
    ],
    rto: 'databaseRestore',
    rpo: ['orderHistory'],
    schedule: '0 5 * APR MON#1',
    cadence: 'yearly, first Monday of April (the runbook’s Q2 test)',
  },
  'rpo-under-load': {
    name: 'rpo-under-load',
    title: 'RPO under load',
    scenario: 'RPO Under Load',
    hypothesis:
      'With continuous protection running and the trading system placing 100 orders a second, a restore to the newest point after the host dies at a random moment keeps a prefix of the orders, with no gap, losing no more order history than the RPO allows.',
    steps: [
      'restore a copy into a sandbox, start its own venue, and start shipping its database',
      'trade live at 100 orders/s on that venue',
      'at a random moment: stop the shipper with no last round, and the copy',
      'restore the stream to its newest point',
      'check the orders kept are a prefix of those written, and measure the RPO',
    ],
    rto: null,
    rpo: ['orderHistory'],
    schedule: '0 4 * * MON#2',
    cadence: 'monthly, second Monday',
  },
  'annual-audit': {
    name: 'annual-audit',
    title: 'Annual DR audit',
    scenario: 'Annual DR Audit',
    hypothesis:
      "The year's evidence holds: every scheduled drill ran, every failure was followed by a pass, backups covered every location, and the audit trail's hash chain is intact.",
    steps: [
      "gather the year's drills, backups per location, restores and kill-switch events",
      'verify the audit trail',
      'write the report (JSON and HTML)',
    ],
    rto: null,
    rpo: [],
    schedule: '0 6 * OCT MON#1',
    cadence: 'yearly, first Monday of October (the runbook’s Q4 audit)',
  },
};
