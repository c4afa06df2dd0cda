// Object stores: the directory and S3 backends of the ObjectStore port, and the one place
// that builds the right one from the configuration.
import { resolve } from 'node:path';
import type { ObjectStore, StoreConfig } from '@lifeboat/domain';
import { FsObjectStore } from './fs.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3.js';

export { compareKeys, FsObjectStore, INCOMPLETE_DIR, UPLOAD_MARKER_SUFFIX, validateKey, validatePrefix } from './fs.js';
export { S3ObjectStore, type S3ObjectStoreOptions } from './s3.js';

/**
 * Builds the configured store. A relative fs path is taken from baseDir (the config file's
 * directory). S3 credentials come from the environment variables the config names when
 * both are set, else from the default AWS credential chain (profile, role, IMDS, ...).
 */
export function createObjectStore(
  config: StoreConfig,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env,
): ObjectStore {
  if (config.type === 'fs') return new FsObjectStore(resolve(baseDir, config.path));
  const accessKeyId = env[config.accessKeyIdEnv];
  const secretAccessKey = env[config.secretAccessKeyEnv];
  const options: S3ObjectStoreOptions = {
    region: config.region,
    bucket: config.bucket,
    prefix: config.prefix,
    forcePathStyle: config.forcePathStyle,
    partSizeBytes: config.partSizeMiB * 1024 * 1024,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
  };
  return new S3ObjectStore(options);
}
