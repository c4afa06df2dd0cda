// What a command that PostgreSQL runs once per WAL file needs (`wal push`, `wal fetch`), and
// nothing that takes long to load: the S3 SDK only for an S3 store, age only once something
// is encrypted or decrypted, no database drivers, no job bus. A full `Runtime` has the same
// shape, so the use cases take either.
import { resolve } from 'node:path';
import type { ManifestKey, ObjectStore, StoreConfig } from '@lifeboat/domain';
import { type LoadedConfig, type ResolvedTarget, resolvePath, resolveTarget } from './config/load.js';
import { manifestKeyFrom } from './config/manifest-key.js';

export { parallelGzip } from './archive/gzip.js';
export { configPath, type LoadedConfig, loadConfig, type ResolvedTarget, resolveTarget } from './config/load.js';

/** The part of a `Runtime` that archiving WAL uses. */
export interface LightRuntime {
  loaded: LoadedConfig;
  /** The primary location. */
  store: ObjectStore;
  target(name?: string): ResolvedTarget;
  /** age recipients; empty when encryption is off. */
  recipients: readonly string[];
  /** The configured identities; empty when none is configured. */
  identities(): Promise<string[]>;
  /** The key manifests are sealed with; null when none is configured. */
  manifestKey(): ManifestKey | null;
}

/** The primary store, loading only its own backend. */
export async function openObjectStore(
  config: StoreConfig,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ObjectStore> {
  if (config.type === 'fs') {
    const { FsObjectStore } = await import('./object-store/fs.js');
    return new FsObjectStore(resolve(baseDir, config.path));
  }
  const { createObjectStore } = await import('./object-store/index.js');
  return createObjectStore(config, baseDir, env);
}

/** A runtime over the primary store, as `createRuntime` builds it, without what WAL archiving never uses. */
export async function openLightRuntime(
  loaded: LoadedConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LightRuntime> {
  const { config, baseDir } = loaded;
  const store = await openObjectStore(config.store, baseDir, env);
  let identities: Promise<string[]> | undefined;
  return {
    loaded,
    store,
    target: (name) => resolveTarget(loaded, name),
    recipients: config.encryption?.recipients ?? [],
    identities: () => {
      const file = config.encryption?.identityFile ?? env.LIFEBOAT_AGE_IDENTITY_FILE;
      if (!file) return Promise.resolve([]);
      identities ??= import('./archive/encryption.js')
        .then((m) => m.readIdentityFile(resolvePath(baseDir, file)))
        .catch((err) => {
          identities = undefined;
          throw err;
        });
      return identities;
    },
    manifestKey: () => manifestKeyFrom(config.backup.manifestKeyEnv, env),
  };
}

/** age encryption, loaded on first use. */
export async function* encryptStream(
  source: AsyncIterable<Uint8Array>,
  recipients: readonly string[],
): AsyncGenerator<Uint8Array> {
  const m = await import('./archive/encryption.js');
  yield* m.encryptStream(source, recipients);
}

/** age decryption, loaded on first use. */
export async function* decryptStream(
  source: AsyncIterable<Uint8Array>,
  identities: readonly string[],
): AsyncGenerator<Uint8Array> {
  const m = await import('./archive/encryption.js');
  yield* m.decryptStream(source, identities);
}

/** A stream segment decoded and checked (docs/FORMAT.md §11), its codec loaded on first use. */
export async function decodeStreamSegment(
  stored: Uint8Array,
  encrypted: boolean,
  identities: () => Promise<string[]>,
  what: string,
): Promise<{ header: Record<string, unknown>; payload: Buffer }> {
  const m = await import('./stream/segment.js');
  return m.decodeSegment(stored, encrypted, identities, what);
}
