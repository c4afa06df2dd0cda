// The key stored manifests are sealed with: read from the environment variable that
// `backup.manifestKeyEnv` names, never from the configuration file, never logged.
import { createHmac } from 'node:crypto';
import type { ManifestKey } from '@lifeboat/domain';
import { LifeboatError } from '@lifeboat/domain/errors';

/** Shorter than this, a value is a placeholder or a mistake, not a key. */
const MIN_KEY_LENGTH = 16;

/**
 * The manifest key named by `backup.manifestKeyEnv`, or null when none is configured. A
 * configured variable that is unset or too short is an error: manifests would be written
 * without their HMAC, and every sealed one refused.
 */
export function manifestKeyFrom(envName: string | undefined, env: NodeJS.ProcessEnv): ManifestKey | null {
  if (!envName) return null;
  const value = env[envName];
  if (!value || value.length < MIN_KEY_LENGTH) {
    throw new LifeboatError(
      'INVALID_CONFIG',
      `backup.manifestKeyEnv names ${envName}, which is ${value ? `shorter than ${MIN_KEY_LENGTH} characters` : 'not set'}: manifests can be neither sealed nor checked`,
      { hint: `set ${envName} to the manifest key (e.g. \`openssl rand -hex 32\`), the same everywhere Lifeboat runs` },
    );
  }
  return { name: envName, hmac: (text) => createHmac('sha256', value).update(text, 'utf8').digest('hex') };
}
