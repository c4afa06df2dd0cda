// Lifeboat's adapters: the outside world behind the domain's ports.
export * from './alerts/webhook.js';
export * from './archive/index.js';
export { writeFileAtomic } from './atomic-file.js';
export * from './audit/index.js';
export * from './books/index.js';
export * from './catalog/index.js';
export * from './config/load.js';
export * from './config/manifest-key.js';
export * from './config/runtime.js';
export * from './database/index.js';
export * from './job-bus/index.js';
export * from './kill-switch/index.js';
export * from './lock/index.js';
export * from './object-store/index.js';
export * from './ops/index.js';
export * from './stream/index.js';
export * from './target-control/index.js';
