export { ingestAll, openCatalogFromEnv, PostgresCatalog, type SyncResult } from './postgres.js';
export { type CatalogRecord, isCatalogKey, recordFromObject } from './records.js';
