// Lifeboat's domain: contracts, schemas, ports and pure policies. No I/O happens here.
export * from './errors.js';
export * from './glob.js';
export * from './ids.js';
export * from './layout.js';
export * from './ports/database-engine.js';
export * from './ports/job-bus.js';
export * from './ports/object-store.js';
export * from './retention.js';
export * from './schemas/backup.js';
export * from './schemas/config.js';
export * from './schemas/manifest.js';
export * from './target-schema.js';
export * from './units.js';
