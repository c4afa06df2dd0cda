export * from './encryption.js';
export * from './extract.js';
export * from './gzip.js';
export * from './pipeline.js';
export * from './tar.js';
