// Runs SQLite's integrity check and row counts off the main thread: on a large database they
// take tens of seconds, and the main thread must keep renewing the restore's lock meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import { inspectDatabaseFile } from '@lifeboat/adapters';

const { file } = workerData as { file: string };
inspectDatabaseFile('sqlite', file).then(
  (result) => parentPort?.postMessage({ ok: true, result }),
  (err: Error) =>
    parentPort?.postMessage({ ok: false, error: { message: err.message, code: (err as { code?: string }).code } }),
);
