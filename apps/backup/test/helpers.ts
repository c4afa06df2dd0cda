// Builds a real runtime over a generated target for the backup app's tests.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRuntime, generateAgeKeyPair, parseConfig, type Runtime } from '@lifeboat/adapters';
import type { LifeboatConfigInput } from '@lifeboat/domain';
import { type GeneratedTarget, generateTarget } from '@lifeboat/testkit';

export interface Fixture {
  dir: string;
  target: GeneratedTarget;
  runtime: Runtime;
  cleanup(): Promise<void>;
}

export async function fixture(
  options: {
    sizeBytes?: number;
    seed?: number;
    /** Encrypt archives to a fresh age key pair (identity in <dir>/identity.txt). */
    encrypt?: boolean;
    config?: Partial<LifeboatConfigInput>;
    env?: NodeJS.ProcessEnv;
  } = {},
): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-backup-test-'));
  const target = await generateTarget(join(dir, 'target'), {
    sizeBytes: options.sizeBytes ?? 256 * 1024,
    seed: options.seed ?? 7,
  });
  const document: LifeboatConfigInput = {
    store: { type: 'fs', path: 'store' },
    targets: { demo: { root: 'target' } },
    ...options.config,
  };
  if (options.encrypt) {
    const keys = await generateAgeKeyPair();
    await writeFile(join(dir, 'identity.txt'), keys.file, { mode: 0o600 });
    document.encryption = { recipients: [keys.recipient], identityFile: 'identity.txt' };
  }
  const runtime = createRuntime(parseConfig(document, join(dir, 'lifeboat.yaml'), dir), options.env ?? process.env);
  return { dir, target, runtime, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
