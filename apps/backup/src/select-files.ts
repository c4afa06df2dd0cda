// Which files of a target go into a backup, in which role, and whether each is a secret
// or append-only; everything decided from the target's rules in lifeboat.yaml.
import { lstat, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { type EntryRole, matchesAny, type TargetConfig } from '@lifeboat/domain';

export interface SelectedFile {
  /** Relative to the target root, forward slashes. */
  source: string;
  role: Exclude<EntryRole, 'database'>;
  secret: boolean;
  appendOnly: boolean;
}

export interface Selection {
  files: SelectedFile[];
  skipped: Array<{ source: string; role: EntryRole; reason: string }>;
}

const ROLE_ORDER = ['state', 'config', 'audit', 'reports'] as const;

/** Archive path of a file: `<role>/<source>`, without repeating a leading `<role>/`. */
export function archivePathFor(role: EntryRole, source: string): string {
  return source.startsWith(`${role}/`) ? source : `${role}/${source}`;
}

async function walk(root: string, dir: string, out: string[], links: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    const abs = join(dir, e.name);
    const rel = relative(root, abs).split(sep).join('/');
    if (e.isSymbolicLink()) links.push(rel);
    else if (e.isDirectory()) await walk(root, abs, out, links);
    else if (e.isFile()) out.push(rel);
  }
}

/** Lists the target's files that its rules select; `exclude` holds paths owned elsewhere (the database). */
export async function selectFiles(root: string, rules: TargetConfig, exclude: readonly string[]): Promise<Selection> {
  await lstat(root);
  const all: string[] = [];
  const links: string[] = [];
  await walk(root, root, all, links);
  all.sort();
  const selection: Selection = { files: [], skipped: [] };
  for (const source of all) {
    if (exclude.some((x) => source === x || source.startsWith(`${x}-`))) continue;
    const role = ROLE_ORDER.find((r) => matchesAny(source, rules.files[r]));
    if (!role) continue;
    selection.files.push({
      source,
      role,
      secret: matchesAny(source, rules.secrets),
      appendOnly: matchesAny(source, rules.appendOnly),
    });
  }
  for (const source of links.sort()) {
    const role = ROLE_ORDER.find((r) => matchesAny(source, rules.files[r]));
    if (role) selection.skipped.push({ source, role, reason: 'symbolic link (not followed)' });
  }
  return selection;
}
