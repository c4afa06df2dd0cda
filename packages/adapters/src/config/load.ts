// Reads lifeboat.yaml, validates it, and resolves paths against the file's directory. Every
// error names the file and the key that is wrong.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
// Subpaths, not the whole domain: `kill-switch activate` loads this before anything else.
import { describeZodError, LifeboatConfig, type TargetConfig } from '@lifeboat/domain/config';
import { LifeboatError } from '@lifeboat/domain/errors';
import { parse as parseYaml, YAMLParseError } from 'yaml';

export interface LoadedConfig {
  config: LifeboatConfig;
  /** Absolute path of the file read. */
  path: string;
  /** Directory relative paths in the file are resolved against. */
  baseDir: string;
}

export interface ResolvedTarget {
  name: string;
  config: TargetConfig;
  /** Absolute path of the target's root directory. */
  root: string;
}

/** The config path to use: the explicit one, else LIFEBOAT_CONFIG, else ./lifeboat.yaml. */
export function configPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(explicit ?? env.LIFEBOAT_CONFIG ?? 'lifeboat.yaml');
}

/** Validates an already-parsed document (from YAML or JSON). */
export function parseConfig(document: unknown, source: string, baseDir: string): LoadedConfig {
  refuseProtoKeys(document, source);
  const result = LifeboatConfig.safeParse(document ?? {});
  if (!result.success) {
    throw new LifeboatError('INVALID_CONFIG', describeZodError(result.error, source), {
      hint: 'docs: README.md, "Configuration"',
    });
  }
  return { config: result.data, path: source, baseDir };
}

/**
 * A `__proto__` key (a target or location name, or anywhere else) is refused naming where it
 * is: the schema would drop it without a word, and a target that silently is not there is
 * worse than an error. The walk is iterative and visits each node once: YAML anchors make
 * shared and cyclic structures, and nesting can be deeper than the call stack.
 */
function refuseProtoKeys(document: unknown, source: string): void {
  const seen = new WeakSet<object>();
  const todo: Array<{ value: unknown; path: string[] }> = [{ value: document, path: [] }];
  for (let next = todo.pop(); next; next = todo.pop()) {
    const { value, path } = next;
    if (value === null || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    for (const [key, item] of Object.entries(value)) {
      if (key === '__proto__' && !Array.isArray(value)) {
        throw new LifeboatError(
          'INVALID_CONFIG',
          `${source}: ${[...path, key].join('.')}: "__proto__" cannot be a key`,
          {
            hint: 'rename it',
          },
        );
      }
      todo.push({ value: item, path: [...path, key] });
    }
  }
}

export async function loadConfig(path: string): Promise<LoadedConfig> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LifeboatError(
      'INVALID_CONFIG',
      `config file ${abs} ${code === 'ENOENT' ? 'not found' : `unreadable (${code})`}`,
      {
        hint: 'pass --config <file>, set LIFEBOAT_CONFIG, or create one with `lifeboat demo init <dir>`',
      },
    );
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new LifeboatError(
      'INVALID_CONFIG',
      `${abs}${where}: not valid YAML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  return parseConfig(document, abs, dirname(abs));
}

export function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

/** The named target, or the only one when no name is given. */
export function resolveTarget(loaded: LoadedConfig, name?: string): ResolvedTarget {
  const names = Object.keys(loaded.config.targets);
  const chosen = name ?? (names.length === 1 ? names[0] : undefined);
  if (!chosen) {
    throw new LifeboatError('INVALID_REQUEST', `${loaded.path} defines several targets (${names.join(', ')})`, {
      hint: 'name one with --target',
    });
  }
  // Own names only: `constructor` is a valid target name that every plain object answers to.
  const config = Object.hasOwn(loaded.config.targets, chosen) ? loaded.config.targets[chosen] : undefined;
  if (!config) {
    throw new LifeboatError('NOT_FOUND', `target "${chosen}" is not defined in ${loaded.path}`, {
      hint: `defined targets: ${names.join(', ') || 'none'}`,
    });
  }
  return { name: chosen, config, root: resolvePath(loaded.baseDir, config.root) };
}
