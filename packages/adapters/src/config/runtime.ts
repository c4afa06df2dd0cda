// Wires real adapters from a loaded configuration: the object store, each target's
// database engine, and the encryption keys. Apps build their handler context from this.
import {
  type DatabaseEngine,
  LifeboatError,
  type ManifestKey,
  type ObjectStore,
  PRIMARY_LOCATION,
  type RetentionPolicy,
} from '@lifeboat/domain';
import { readIdentityFile } from '../archive/encryption.js';
import { createDatabaseEngine } from '../database/index.js';
import { createObjectStore } from '../object-store/index.js';
import { type LoadedConfig, type ResolvedTarget, resolvePath, resolveTarget } from './load.js';
import { manifestKeyFrom } from './manifest-key.js';

/** One place backups are kept: the primary store, or a location copies go to. */
export interface Location {
  name: string;
  primary: boolean;
  store: ObjectStore;
  retention: RetentionPolicy;
}

export interface Runtime {
  loaded: LoadedConfig;
  /** This runtime's store: the primary, unless the runtime came from `at()`. */
  store: ObjectStore;
  /** The name of the location `store` is. */
  locationName: string;
  /** The retention of this location. */
  retention: RetentionPolicy;
  /** Every location, the primary first, then the others in the configured order. */
  locations: readonly Location[];
  /** The same runtime over another location's store (NOT_FOUND for a name not configured). */
  at(name: string): Runtime;
  target(name?: string): ResolvedTarget;
  engineFor(target: ResolvedTarget): DatabaseEngine | null;
  /** age recipients every archive is encrypted to; empty when encryption is off. */
  recipients: readonly string[];
  /** Reads the configured identity file; empty when none is configured. */
  identities(): Promise<string[]>;
  /** The key manifests are sealed with (`backup.manifestKeyEnv`); null when none is configured. */
  manifestKey(): ManifestKey | null;
}

export function createRuntime(loaded: LoadedConfig, env: NodeJS.ProcessEnv = process.env): Runtime {
  const { config, baseDir } = loaded;
  const locations: Location[] = [
    {
      name: PRIMARY_LOCATION,
      primary: true,
      store: createObjectStore(config.store, baseDir, env),
      retention: config.retention,
    },
    ...Object.entries(config.locations).map(([name, { retention, ...store }]) => ({
      name,
      primary: false,
      store: createObjectStore(store, baseDir, env),
      retention: retention ?? config.retention,
    })),
  ];
  let identities: Promise<string[]> | undefined;
  const over = (location: Location): Runtime => {
    const self: Runtime = {
      loaded,
      store: location.store,
      locationName: location.name,
      retention: location.retention,
      locations,
      at: (name) => {
        const found = locations.find((l) => l.name === name);
        if (!found) {
          throw new LifeboatError('NOT_FOUND', `location "${name}" is not configured in ${loaded.path}`, {
            hint: `locations: ${locations.map((l) => l.name).join(', ')}`,
          });
        }
        return found === location ? self : over(found);
      },
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
      manifestKey: () => manifestKeyFrom(config.backup.manifestKeyEnv, env),
    };
    return self;
  };
  return over(locations[0] as Location);
}
