// SQLite's integrity check on a thread of its own: on a large database it takes seconds of
// CPU that the reconciler spends, meanwhile, on asking the venue and reading the books.
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { checkSqliteIntegrity } from './sqlite-integrity.js';

// Below the reconciler's own threads, so the check takes the CPU that the read and its garbage
// collector leave rather than preempting them: on two cores the read of a million orders took
// 0.3 s less, and the check still ended before it. Linux only, where a thread's priority is its
// own; elsewhere it would be the whole process's. Where it cannot be set, the check runs as it is.
if (process.platform === 'linux') {
  try {
    setPriority(constants.priority.PRIORITY_BELOW_NORMAL);
  } catch {}
}

const { file } = workerData as { file: string };
parentPort?.postMessage(checkSqliteIntegrity(file));
