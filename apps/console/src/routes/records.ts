// Reports and results kept as JSON objects under a prefix (restores, reconciliations): listed
// by key, which sorts by time, with a few fields of each.
import type { ObjectStore } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain';

/** Every list here is oldest first, like `backups list`, and keeps the newest 200. */
const LIMIT = 200;

export async function listRecords(
  store: ObjectStore,
  prefix: string,
  summarize: (record: Record<string, unknown>) => Record<string, unknown>,
): Promise<Array<{ id: string; key: string; summary: Record<string, unknown> }>> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) {
    if (o.key.endsWith('.json') && !o.key.slice(prefix.length).includes('/')) keys.push(o.key);
  }
  keys.sort();
  const out = [];
  for (const key of keys.slice(-LIMIT)) {
    const id = key.slice(prefix.length, -'.json'.length);
    try {
      out.push({ id, key, summary: summarize(JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8'))) });
    } catch {
      out.push({ id, key, summary: { unreadable: true } });
    }
  }
  return out;
}

/** One record by id (a file name under the prefix; the route's schema keeps `/` and `..` out). */
export async function readRecord(store: ObjectStore, prefix: string, id: string, what: string): Promise<unknown> {
  const key = `${prefix}${id}.json`;
  if (!(await store.head(key))) throw new LifeboatError('NOT_FOUND', `${what} ${id} not found`);
  return JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8'));
}
