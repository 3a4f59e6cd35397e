import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LOCK_DIR, LOCK_OWNER, lockRunDir } from '../../src/train/run_lock.js';
import { UserError } from '../../src/util/errors.js';

async function runDir(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'simtrip-lock-')), 'run');
}

/** The PID of a process that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

async function plantLock(dir: string, owner: Record<string, unknown> | undefined, ageMs = 0): Promise<void> {
  await mkdir(join(dir, LOCK_DIR), { recursive: true });
  if (owner) await writeFile(join(dir, LOCK_OWNER), JSON.stringify(owner));
  const t = (Date.now() - ageMs) / 1000;
  await utimes(join(dir, LOCK_DIR), t, t);
}

describe('lockRunDir', () => {
  it('takes the lock, names its holder to a second writer, and leaves nothing behind when released', async () => {
    const dir = await runDir();
    const lock = await lockRunDir(dir, { create: true, log: () => undefined });
    expect(existsSync(join(dir, LOCK_DIR))).toBe(true);
    const owner = JSON.parse(await readFile(join(dir, LOCK_OWNER), 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, host: hostname() });
    const err = await lockRunDir(dir, { create: false, log: () => undefined }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      `${dir} is being trained by another process (PID ${process.pid} on host ${hostname()}, started ${owner.started}; lock ${join(dir, LOCK_DIR)}); ` +
        'only one process may write a run: wait for it to finish, or stop it (Ctrl-C) and continue with --resume',
    );
    lock.check();
    await lock.release();
    expect(existsSync(join(dir, LOCK_DIR))).toBe(false);
    expect(existsSync(join(dir, LOCK_OWNER))).toBe(false);
    // A fresh run that wrote nothing leaves no empty folder.
    expect(existsSync(dir)).toBe(false);
  });

  it('takes over the lock of a process that died (kill -9, power loss), in one line', async () => {
    const dir = await runDir();
    const pid = deadPid();
    await plantLock(dir, { pid, host: hostname(), started: '2026-01-01T00:00:00.000Z' });
    const lines: string[] = [];
    const lock = await lockRunDir(dir, { create: true, log: (l) => lines.push(l) });
    expect(lines).toEqual([
      `lock: ${dir} was locked by PID ${pid} on host ${hostname()}, started 2026-01-01T00:00:00.000Z, but process ${pid} is no longer running; taking the lock over`,
    ]);
    expect(JSON.parse(await readFile(join(dir, LOCK_OWNER), 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });

  it('a lock from before a restart of this machine is stale even if its PID is in use again', async () => {
    const dir = await runDir();
    await plantLock(dir, { pid: process.pid, host: hostname(), started: '2026-01-01T00:00:00.000Z', boot_id: 'another-boot' });
    const lines: string[] = [];
    const bootKnown = existsSync('/proc/sys/kernel/random/boot_id');
    const attempt = lockRunDir(dir, { create: true, log: (l) => lines.push(l) });
    if (!bootKnown) {
      await expect(attempt).rejects.toThrow(UserError);
      return;
    }
    await (await attempt).release();
    expect(lines[0]).toMatch(/the machine has restarted since; taking the lock over$/);
  });

  it('another host: held while its mtime is fresh, stale once it has not been refreshed for half an hour', async () => {
    const dir = await runDir();
    const owner = { pid: 1, host: 'elsewhere', started: '2026-01-01T00:00:00.000Z' };
    await plantLock(dir, owner);
    await expect(lockRunDir(dir, { create: true, log: () => undefined })).rejects.toThrow(/by another process \(PID 1 on host elsewhere, started 2026-01-01T00:00:00\.000Z;/);
    await plantLock(dir, owner, 2 * 3600 * 1000);
    const lines: string[] = [];
    await (await lockRunDir(dir, { create: true, log: (l) => lines.push(l) })).release();
    expect(lines[0]).toMatch(/, but it has not been refreshed for 120 minutes; taking the lock over$/);
  });

  it('a lock whose holder never said who it is (died taking it) is stale after a moment\'s grace', async () => {
    const dir = await runDir();
    await plantLock(dir, undefined);
    const lines: string[] = [];
    await (await lockRunDir(dir, { create: true, log: (l) => lines.push(l) })).release();
    expect(lines[0]).toBe(`lock: ${dir} was locked by an unknown process, but it has no ${LOCK_OWNER} (its holder stopped while taking the lock); taking the lock over`);
  });

  it('a lock taken away (removed, or taken over by another process) is noticed: check() throws', async () => {
    const dir = await runDir();
    const lock = await lockRunDir(dir, { create: true, log: () => undefined, refreshMs: 1000 });
    await rm(join(dir, LOCK_DIR), { recursive: true });
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(() => lock.check()).toThrow(/lost the lock on .*; another process may be writing the run/);
    await lock.release();
  });
});
