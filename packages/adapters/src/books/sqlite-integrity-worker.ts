// SQLite's integrity check on a thread of its own: on a large database it takes seconds of
// CPU that the reconciler spends, meanwhile, on asking the venue and reading the books.
import { parentPort, workerData } from 'node:worker_threads';
import { checkSqliteIntegrity } from './sqlite-integrity.js';

const { file } = workerData as { file: string };
parentPort?.postMessage(checkSqliteIntegrity(file));
