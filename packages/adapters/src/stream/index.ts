// Continuous protection's building blocks: SQLite's log read and held, and stream segments.
export * from './segment.js';
export * from './sqlite-source.js';
export * from './wal.js';
