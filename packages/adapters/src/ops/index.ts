export * from './logger.js';
export * from './server.js';
export * from './worker.js';
