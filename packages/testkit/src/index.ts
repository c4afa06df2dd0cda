// The test stack (real PostgreSQL, Redis and an S3 server) and Sofia-shaped data generators.
export * from './cli.js';
export * from './generate-target.js';
export * from './postgres-cluster.js';
export * from './processes.js';
export * from './reconcile-sides.js';
export * from './stack.js';
