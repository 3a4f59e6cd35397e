/**
 * One writer per run directory. `simtrip train` (fresh or --resume) holds `<run>/train.lock` while it
 * runs: a proper-lockfile lock, i.e. a directory made atomically with mkdir whose mtime the holder
 * refreshes. Beside it, `<run>/train.lock.json` says who holds it (PID, host, when that process
 * started), so a refused second writer can name the holder.
 *
 * A lock is stale when its holder is gone: on the same host, its PID no longer runs or the machine
 * has restarted since (boot id); on another host (a shared file system), its mtime has not been
 * refreshed for STALE_MS. A stale lock is taken over with one line saying so. A live holder in a long
 * synchronous step cannot refresh the mtime, which is why the same host asks the PID, not the clock.
 *
 * Readers (eval, report, embed) never take the lock: every file a run writes is replaced atomically
 * or appended whole lines at a time, and metrics.jsonl readers ignore an unterminated last line.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import { z } from 'zod';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';

export const LOCK_DIR = 'train.lock';
export const LOCK_OWNER = 'train.lock.json';

/** A lock from another host counts as stale once its mtime is this old. */
export const STALE_MS = 30 * 60 * 1000;
/** How often the holder refreshes the lock's mtime. */
const UPDATE_MS = 10_000;

const OwnerSchema = z.object({
  pid: z.number().int(),
  host: z.string(),
  /** When the holding process started (ISO time). */
  started: z.string(),
  /** Linux's /proc/sys/kernel/random/boot_id: a restart of the machine changes it. */
  boot_id: z.string().optional(),
  command: z.string().optional(),
});
export type LockOwner = z.infer<typeof OwnerSchema>;

export interface RunLock {
  /** Throws when the lock was lost (its directory removed or taken over by another process). */
  check(): void;
  release(): Promise<void>;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
}

function thisProcess(): LockOwner {
  const boot = bootId();
  return {
    pid: process.pid,
    host: hostname(),
    started: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    ...(boot ? { boot_id: boot } : {}),
    command: process.argv.slice(1).join(' '),
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const parsed = OwnerSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `PID ${owner.pid} on host ${owner.host}, started ${owner.started}` : 'an unknown process';
}

/** A holder writes train.lock.json at once after taking the lock; a lock without it for this long has no live holder. */
const OWNER_GRACE_MS = 1000;

/** Why the held lock at `lockPath` is stale, or undefined while its holder may still be running. */
async function staleReason(lockPath: string, owner: LockOwner | undefined, now = Date.now()): Promise<string | undefined> {
  const me = thisProcess();
  if (!owner) return `it has no ${LOCK_OWNER} (its holder stopped while taking the lock)`;
  if (owner.host === me.host) {
    if (owner.boot_id && me.boot_id && owner.boot_id !== me.boot_id) return 'the machine has restarted since';
    if (!isAlive(owner.pid)) return `process ${owner.pid} is no longer running`;
    return undefined;
  }
  let mtime: number;
  try {
    mtime = (await stat(lockPath)).mtimeMs;
  } catch {
    return undefined; // released meanwhile: the next attempt takes it
  }
  const age = now - mtime;
  return age > STALE_MS ? `it has not been refreshed for ${Math.round(age / 60000)} minutes` : undefined;
}

function heldError(runDir: string, owner: LockOwner | undefined): UserError {
  return new UserError(
    `${runDir} is being trained by another process (${describeOwner(owner)}; lock ${join(runDir, LOCK_DIR)}); ` +
      'only one process may write a run: wait for it to finish, or stop it (Ctrl-C) and continue with --resume',
  );
}

function isLocked(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ELOCKED' || (err as NodeJS.ErrnoException).code === 'EEXIST';
}

async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch {
    return false;
  }
}

/**
 * Takes the run directory's lock (creating the directory when `create`), taking over a stale one with
 * a line to `log`. Throws a UserError naming the holder when another live process has it.
 */
export async function lockRunDir(
  runDir: string,
  options: { create: boolean; log: (line: string) => void; /** mtime refresh period (tests shorten it; at least 1 s) */ refreshMs?: number },
): Promise<RunLock> {
  const lockPath = join(runDir, LOCK_DIR);
  const ownerPath = join(runDir, LOCK_OWNER);
  let created = false;
  if (options.create) created = (await mkdir(runDir, { recursive: true })) !== undefined;
  let lost: Error | undefined;
  const take = () =>
    lockfile.lock(runDir, {
      lockfilePath: lockPath,
      realpath: false,
      stale: STALE_MS,
      update: options.refreshMs ?? UPDATE_MS,
      onCompromised: (err) => {
        lost = err;
      },
    });

  /** A lock already there: a live holder is named in the error; a stale one is removed, with a line. */
  const clearStale = async (): Promise<void> => {
    let owner = await readOwner(ownerPath);
    if (!owner) {
      // Taken a moment ago: its holder is writing who it is.
      await new Promise((resolve) => setTimeout(resolve, OWNER_GRACE_MS));
      owner = await readOwner(ownerPath);
    }
    const reason = await staleReason(lockPath, owner);
    if (reason === undefined) throw heldError(runDir, owner);
    options.log(`lock: ${runDir} was locked by ${describeOwner(owner)}, but ${reason}; taking the lock over`);
    await rm(ownerPath, { force: true });
    await rmdir(lockPath).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  };

  let release: (() => Promise<void>) | undefined;
  // The staleness check comes first: proper-lockfile would take over an old lock without a word.
  for (let attempt = 0; release === undefined; attempt++) {
    if (existsSync(lockPath)) await clearStale();
    try {
      release = await take();
    } catch (err) {
      if (!isLocked(err)) throw err;
      // Taken by another process between the check and the attempt.
      if (attempt > 0) throw heldError(runDir, await readOwner(ownerPath));
    }
  }
  const me = thisProcess();
  await writeJsonAtomic(ownerPath, me);
  return {
    check() {
      if (lost) {
        throw new Error(
          `lost the lock on ${runDir} (${lost.message}); another process may be writing the run, so this one stops without writing more`,
        );
      }
    },
    async release() {
      if (!lost) await release!();
      // Only our own note: another process may have taken the lock the moment it was free.
      const owner = await readOwner(ownerPath);
      if (owner?.pid === me.pid && owner.started === me.started && owner.host === me.host) await rm(ownerPath, { force: true });
      // A fresh run that stopped before writing anything leaves no empty folder behind.
      if (created && (await isEmptyDir(runDir))) await rmdir(runDir).catch(() => undefined);
    },
  };
}
