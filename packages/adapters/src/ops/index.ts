export * from './logger.js';
export * from './server.js';
