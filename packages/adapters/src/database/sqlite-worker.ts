// SQLite's long steps on a thread of their own: the one-step backup copy of a live database,
// the integrity check and row counts of a snapshot or a restored file, and the integrity
// check of the books a reconciliation reads take seconds of CPU each; on the main thread
// they would stop the archive streaming, the job lock renewing or the books' read.
import { constants, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { runSqliteTask, type SqliteTask, taskError } from './sqlite.js';

const task = workerData as SqliteTask;
// The books' integrity check runs below the reconciler's own threads, so it takes the CPU
// that the read and its garbage collector leave rather than preempting them: on two cores
// the read of a million orders took 0.3 s less, and the check still ended before it. Linux
// only, where a thread's priority is its own; elsewhere it would be the whole process's.
if (task.task === 'integrity' && process.platform === 'linux') {
  try {
    setPriority(constants.priority.PRIORITY_BELOW_NORMAL);
  } catch {
    // Where it cannot be set, the check runs as it is.
  }
}

runSqliteTask(task).then(
  (result) => parentPort?.postMessage({ result }),
  (err: unknown) => parentPort?.postMessage({ error: taskError(err) }),
);
