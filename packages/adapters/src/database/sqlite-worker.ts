// SQLite's long steps on a thread of their own: the one-step backup copy of a live database
// and the integrity check and row counts of a snapshot or a restored file take seconds of CPU each, and on the
// main thread they would stop the archive streaming and the job lock renewing meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import { runSqliteTask, type SqliteTask, taskError } from './sqlite.js';

runSqliteTask(workerData as SqliteTask).then(
  (result) => parentPort?.postMessage({ result }),
  (err: unknown) => parentPort?.postMessage({ error: taskError(err) }),
);
