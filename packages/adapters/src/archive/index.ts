export * from './encryption.js';
export * from './extract.js';
export * from './pipeline.js';
export * from './tar.js';
