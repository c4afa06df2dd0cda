// Replacing a small file so that readers see the old or the new content, never half of it:
// the kill switch's state file, the restore lock's files. A temporary file beside it, written,
// fsynced, renamed over it, the directory fsynced. A process killed between the write and the
// rename leaves its temporary file; the next write of the same file on the same host removes
// it, so production keeps no litter of ours.
import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

const HOST = hostname().replace(/[^A-Za-z0-9-]/g, '_');

/** The temporary sibling of file written by this process. */
function tempName(file: string): string {
  return `.${basename(file)}.${HOST}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the temporary siblings of file that processes of this host, now gone, left. */
async function removeDeadTemps(file: string): Promise<void> {
  const dir = dirname(file);
  const prefix = `.${basename(file)}.${HOST}.`;
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.startsWith(prefix) || !f.endsWith('.tmp')) continue;
    const m = /^(\d+)\.[0-9a-f]{8}\.tmp$/.exec(f.slice(prefix.length));
    const pid = m ? Number(m[1]) : 0;
    if (pid > 0 && pid !== process.pid && !alive(pid)) await rm(join(dir, f), { force: true });
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    // Some platforms and filesystems cannot fsync a directory; the rename has happened regardless.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw err;
  } finally {
    await handle?.close().catch(() => {});
  }
}

/**
 * Replaces file atomically (its directory created when missing). `durable` (default) fsyncs
 * the file before the rename and the directory after; `beforeRename` may still call it off.
 * Returns whether the file was replaced.
 */
export async function writeFileAtomic(
  file: string,
  text: string,
  options: { durable?: boolean; beforeRename?: () => Promise<boolean> } = {},
): Promise<boolean> {
  const durable = options.durable ?? true;
  const dir = dirname(file);
  // A server-loss restore writes the kill switch into a directory that does not exist yet.
  await mkdir(dir, { recursive: true });
  await removeDeadTemps(file);
  const tmp = join(dir, tempName(file));
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'wx', 0o644);
    await handle.writeFile(text, 'utf8');
    if (durable) await handle.sync();
    await handle.close();
    handle = undefined;
    if (options.beforeRename && !(await options.beforeRename())) {
      await rm(tmp, { force: true });
      return false;
    }
    await rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  if (durable) await fsyncDir(dir);
  return true;
}
