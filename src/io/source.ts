/**
 * Positional reads of input files, shared by the tensor readers. Readers hold no open file
 * descriptor between calls (nothing to close, nothing to leak): each read opens, checks that the
 * file is still the one whose header was parsed, reads exactly the requested range and closes.
 */
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { InputFileError } from '../util/errors.js';

/** A malformed-content problem found while decoding; readers turn it into an InputFileError. */
export class FormatError extends Error {
  override name = 'FormatError';
}

/** Runs `fn`, reporting format problems (and I/O errors) as InputFileErrors about `path`. */
export function withInputFile<T>(path: string, fn: () => T, context = ''): T {
  try {
    return fn();
  } catch (err) {
    throw asInputFileError(path, err, context);
  }
}

function asInputFileError(path: string, err: unknown, context: string): unknown {
  if (err instanceof InputFileError) return err;
  const prefix = context ? `${context}: ` : '';
  if (err instanceof FormatError) return new InputFileError(path, prefix + err.message);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT') return new InputFileError(path, 'no such file');
  if (code === 'EISDIR') return new InputFileError(path, 'is a directory, expected a file');
  if (code === 'EACCES' || code === 'EPERM') return new InputFileError(path, 'permission denied');
  return err;
}

/** Identity of a file's content, to notice a file replaced or rewritten between reads. */
export interface FileStamp {
  readonly size: number;
  readonly mtimeMs: number;
}

function stampOf(stats: Stats): FileStamp {
  return { size: stats.size, mtimeMs: stats.mtimeMs };
}

export interface RangeReader {
  readonly stamp: FileStamp;
  /** Exactly `length` bytes at `position`, in a fresh (8-byte aligned) buffer. */
  read(position: number, length: number): Uint8Array;
}

function readExact(fd: number, position: number, length: number, fileSize: number): Uint8Array {
  if (position + length > fileSize) {
    throw new FormatError(
      `truncated: needs bytes ${position}..${position + length} but the file has ${fileSize}`,
    );
  }
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new FormatError(`truncated: unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return out;
}

function withFd<T>(path: string, fn: (fd: number, stats: Stats) => T): T {
  const fd = openSync(path, 'r');
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new FormatError('not a regular file');
    return fn(fd, stats);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens `path` for positional reads. Errors (missing file, truncation, file changed since opened) are
 * InputFileErrors naming the path; FormatErrors thrown by callers are left for them to wrap.
 */
export function openRangeReader(path: string): RangeReader {
  const stamp = withInputFile(path, () => withFd(path, (_fd, stats) => stampOf(stats)));
  return {
    stamp,
    read(position, length) {
      return withInputFile(path, () =>
        withFd(path, (fd, stats) => {
          const now = stampOf(stats);
          if (now.size !== stamp.size || now.mtimeMs !== stamp.mtimeMs) {
            throw new FormatError('file changed on disk since it was opened');
          }
          return readExact(fd, position, length, stats.size);
        }),
      );
    },
  };
}
