// The job bus adapters, and the choice between them: BullMQ on Redis when distributed, in-process when embedded.
import type { JobBus } from '@lifeboat/domain';
import { BullMqJobBus } from './bullmq.js';
import { InProcessJobBus } from './in-process.js';

export { BullMqJobBus, type BullMqJobBusOptions, jobLockMs } from './bullmq.js';
export { InProcessJobBus, type InProcessJobBusOptions } from './in-process.js';

/** BullMQ when `LIFEBOAT_REDIS_URL` is set (keys under `LIFEBOAT_QUEUE_PREFIX`, default `lifeboat`), else in-process. */
export function createJobBus(env: NodeJS.ProcessEnv = process.env): JobBus {
  const url = env.LIFEBOAT_REDIS_URL?.trim();
  if (!url) return new InProcessJobBus();
  const prefix = env.LIFEBOAT_QUEUE_PREFIX?.trim();
  return new BullMqJobBus({ url, ...(prefix ? { prefix } : {}) });
}
