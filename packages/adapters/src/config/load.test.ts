// lifeboat.yaml read from a real file: a `__proto__` key, which the schema would drop without a
// word, is refused naming where it is; `constructor` and the like are ordinary names.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from './load.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-config-load-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(name: string, text: string) {
  const file = join(dir, name);
  await writeFile(file, text);
  return { file, loading: loadConfig(file) };
}

describe('loadConfig', () => {
  it.each([
    [
      'a target',
      'store: {type: fs, path: s}\ntargets:\n  __proto__: {root: t}\n  demo: {root: u}\n',
      'targets.__proto__',
    ],
    [
      'a location',
      'store: {type: fs, path: s}\ntargets: {demo: {root: t}}\nlocations:\n  __proto__: {type: fs, path: x}\n',
      'locations.__proto__',
    ],
    [
      'the top level',
      '__proto__:\n  polluted: true\nstore: {type: fs, path: s}\ntargets: {demo: {root: t}}\n',
      '__proto__',
    ],
  ])('refuses __proto__ as %s, naming the file and the key', async (_, text, key) => {
    const { file, loading } = await load(`proto-${key}.yaml`, text);
    await expect(loading).rejects.toMatchObject({
      code: 'INVALID_CONFIG',
      message: `${file}: ${key}: "__proto__" cannot be a key`,
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('takes constructor as an ordinary target name', async () => {
    const { loading } = await load(
      'constructor.yaml',
      'store: {type: fs, path: s}\ntargets:\n  constructor: {root: t}\n',
    );
    expect(Object.keys((await loading).config.targets)).toEqual(['constructor']);
  });
});
