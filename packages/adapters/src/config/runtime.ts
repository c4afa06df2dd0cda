// Wires real adapters from a loaded configuration: the object store, each target's
// database engine, and the encryption keys. Apps build their handler context from this.
import type { DatabaseEngine, ObjectStore } from '@lifeboat/domain';
import { readIdentityFile } from '../archive/encryption.js';
import { createDatabaseEngine } from '../database/index.js';
import { createObjectStore } from '../object-store/index.js';
import { type LoadedConfig, type ResolvedTarget, resolvePath, resolveTarget } from './load.js';

export interface Runtime {
  loaded: LoadedConfig;
  store: ObjectStore;
  target(name?: string): ResolvedTarget;
  engineFor(target: ResolvedTarget): DatabaseEngine | null;
  /** age recipients every archive is encrypted to; empty when encryption is off. */
  recipients: readonly string[];
  /** Reads the configured identity file; empty when none is configured. */
  identities(): Promise<string[]>;
}

export function createRuntime(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Runtime {
  const { config, baseDir } = loaded;
  const store = createObjectStore(config.store, baseDir, env);
  let identities: Promise<string[]> | undefined;
  return {
    loaded,
    store,
    target: (name) => resolveTarget(loaded, name),
    engineFor: (t) => (t.config.database ? createDatabaseEngine(t.config.database, t.root, env) : null),
    recipients: config.encryption?.recipients ?? [],
    identities: () => {
      const file = config.encryption?.identityFile ?? env.LIFEBOAT_AGE_IDENTITY_FILE;
      if (!file) return Promise.resolve([]);
      // A failed read is not remembered: a worker recovers once the file is mounted.
      identities ??= readIdentityFile(resolvePath(baseDir, file)).catch((err) => {
        identities = undefined;
        throw err;
      });
      return identities;
    },
  };
}
