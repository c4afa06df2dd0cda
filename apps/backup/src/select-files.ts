// Which files of a target go into a backup, in which role, and whether each is a secret
// or append-only; everything decided from the target's rules in lifeboat.yaml.
import type { Dirent } from 'node:fs';
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
  warnings: string[];
}

const ROLE_ORDER = ['state', 'config', 'audit', 'reports'] as const;

/** Archive path of a file: `<role>/<source>`, unique because sources are. */
export function archivePathFor(role: EntryRole, source: string): string {
  return `${role}/${source}`;
}

/** The role whose rules select a path, or, for a directory, could select something below it. */
function roleFor(rules: TargetConfig, path: string, isDir = false): SelectedFile['role'] | undefined {
  const probes = isDir
    ? [`${path}/x`, `${path}/x.json`, `${path}/x.jsonl`, `${path}/x.log`, `${path}/x/y.jsonl`]
    : [path];
  return ROLE_ORDER.find((r) => probes.some((p) => matchesAny(p, rules.files[r])));
}

/** Lists the target's files that its rules select; `exclude` holds paths owned elsewhere (the database). */
export async function selectFiles(root: string, rules: TargetConfig, exclude: readonly string[]): Promise<Selection> {
  await lstat(root);
  const selection: Selection = { files: [], skipped: [], warnings: [] };
  const walk = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (dir === root) throw err;
      const rel = relative(root, dir).split(sep).join('/');
      // An unreadable folder no rule reaches into is none of the backup's business.
      if (roleFor(rules, rel, true))
        selection.warnings.push(
          `${rel}/: not readable (${(err as NodeJS.ErrnoException).code}); its files are not in the backup`,
        );
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const abs = join(dir, e.name);
      const source = relative(root, abs).split(sep).join('/');
      if (e.isSymbolicLink()) {
        // Links are not followed: they may point anywhere. Say so when a rule would have wanted them.
        const role = roleFor(rules, source) ?? roleFor(rules, source, true);
        if (role) selection.skipped.push({ source, role, reason: 'symbolic link (not followed)' });
      } else if (e.isDirectory()) {
        await walk(abs);
      } else if (e.isFile()) {
        if (exclude.some((x) => source === x || source.startsWith(`${x}-`))) continue;
        const role = roleFor(rules, source);
        if (!role) continue;
        selection.files.push({
          source,
          role,
          secret: matchesAny(source, rules.secrets),
          appendOnly: matchesAny(source, rules.appendOnly),
        });
      }
    }
  };
  await walk(root);
  selection.files.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return selection;
}
