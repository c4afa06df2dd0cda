// The restore app: its handler, for the BullMQ worker in main.ts and for the CLI's embedded mode.
export * from './context.js';
export { parseRestoreRequest, restore } from './handlers/restore.js';
export * from './kill-switch.js';
export { type PlanStep, runPlan, timelineProgress } from './plan.js';
export * from './postgres-pitr.js';
