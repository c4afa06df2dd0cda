// The reconciler app: its handler, for the BullMQ worker in main.ts and for the CLI's embedded mode.
export * from './context.js';
export { CcxtExchangeSource } from './exchange/ccxt.js';
export { FileExchangeSource } from './exchange/file.js';
export { HttpExchangeSource } from './exchange/http.js';
export { parseReconcileRequest, reconcile } from './handlers/reconcile.js';
