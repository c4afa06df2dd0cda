// The backup app: its handlers, for the BullMQ worker in main.ts and for the CLI's embedded mode.
export * from './context.js';
export { backup, parseBackupRequest } from './handlers/backup.js';
export * from './handlers/basebackup.js';
export * from './handlers/catalog.js';
export * from './handlers/extract.js';
export * from './handlers/locations.js';
export * from './handlers/prune.js';
export { parseReplicateRequest, queueCopiesOn, replicate } from './handlers/replicate.js';
export * from './handlers/verify.js';
export * from './handlers/wal.js';
export * from './handlers/wal-stream.js';
export { archivePathFor, selectFiles } from './select-files.js';
export * from './ship/files.js';
export * from './ship/postgres.js';
export * from './ship/prune.js';
export * from './ship/restore-sqlite.js';
export * from './ship/run.js';
export * from './ship/sqlite.js';
