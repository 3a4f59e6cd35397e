/**
 * Crash-safe file writes: readers (and a resumed run) see either the old file or the complete new
 * one, never a torn checkpoint. The data goes to a temporary file in the target's directory (rename
 * is only atomic within one file system), is flushed to disk, and is then renamed over the target.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export type FileData = Uint8Array | string | readonly Uint8Array[];

function chunksOf(data: FileData): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  return data instanceof Uint8Array ? [data] : data;
}

async function writeAll(handle: FileHandle, chunks: readonly Uint8Array[]): Promise<void> {
  let position = 0;
  for (const chunk of chunks) {
    let done = 0;
    // A single write may be partial (large buffers, signals), so loop until the chunk is out.
    while (done < chunk.byteLength) {
      const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done, position);
      done += bytesWritten;
      position += bytesWritten;
    }
  }
}

/** Makes the rename itself durable. Some platforms cannot fsync a directory; that is not fatal. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Best effort: the file's own data is already synced.
  } finally {
    await handle?.close();
  }
}

export async function writeFileAtomic(path: string, data: FileData): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx');
    await writeAll(handle, chunksOf(data));
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  await syncDirectory(dir);
}

/** Pretty-printed JSON with a trailing newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new TypeError(`cannot serialise ${typeof value} as JSON`);
  await writeFileAtomic(path, `${text}\n`);
}
