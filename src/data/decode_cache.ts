/**
 * Decode-and-resize once: every image is decoded with sharp, resized to size x size and stored as raw
 * uint8 RGB in an on-disk cache, so later loads (the next run, a resumed run, evaluation) read a few
 * hundred KB per image instead of decoding a JPEG.
 *
 * An entry is keyed by (absolute path, target size, fit, mtime in ns, file size): editing or
 * replacing an image changes its mtime or size and so misses the cache; a different image_size gets
 * its own entries. Entries are written to a temporary name and renamed, so a crash or a second
 * process never leaves a torn entry under the real name; an entry of the wrong length is ignored and
 * rewritten anyway.
 *
 * Decoding runs many files at once: sharp does its work on libuv's thread pool, so keeping several
 * promises in flight uses every core without worker threads.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { readImageResized, type RGBImage } from '../io/image.js';

export type Fit = 'cover' | 'fill';
export type Decoder = (path: string, size: number, fit: Fit) => Promise<RGBImage>;

export interface DecodeOptions {
  /** Output side: every image becomes size x size x 3. */
  size: number;
  /** How a non-square image becomes square (see ResizeOptions.fit in src/io/image.ts). */
  fit?: Fit;
  /** Cache folder; absent: no cache. */
  cacheDir?: string;
  /** Files in flight at once (default: 2 per core, at least 4). */
  concurrency?: number;
  /** Replaceable for tests (counting decodes); default: sharp through readImageResized. */
  decoder?: Decoder;
  /** Receives a one-time note when the cache cannot be written (read-only disk, full disk). */
  log?: (line: string) => void;
}

export interface DecodeFailure {
  index: number;
  path: string;
  kind: 'missing image' | 'unreadable image';
  detail: string;
}

export interface DecodeOutcome {
  /** Pixels of the images that loaded, in input order, size*size*3 bytes each. */
  pixels: Uint8Array;
  /** Indices (into the input paths) of the images in `pixels`. */
  kept: Int32Array;
  failures: DecodeFailure[];
  /** Images decoded from their file, and images read from the cache. */
  decoded: number;
  cached: number;
  seconds: number;
}

const MAGIC = 0x31435453; // 'STC1' little-endian
const HEADER = 16;
const CACHE_VERSION = 'images-v1';

export const defaultDecoder: Decoder = (path, size, fit) => readImageResized(path, size, { fit });

/** Where the entry of one file version lives. */
export function cacheEntryPath(cacheDir: string, absPath: string, size: number, fit: Fit, mtimeNs: bigint, bytes: bigint): string {
  const key = createHash('sha256').update(JSON.stringify([absPath, size, fit, mtimeNs.toString(), bytes.toString()])).digest('hex');
  return join(cacheDir, CACHE_VERSION, key.slice(0, 2), `${key}.rgb`);
}

function encodeEntry(img: RGBImage): Uint8Array {
  const out = new Uint8Array(HEADER + img.data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, img.height, true);
  view.setUint32(8, img.width, true);
  view.setUint32(12, 3, true);
  out.set(img.data, HEADER);
  return out;
}

/** The entry's pixels, or undefined when absent or not a whole entry of the expected size. */
async function readEntry(path: string, size: number): Promise<Uint8Array | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.length !== HEADER + size * size * 3) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== size || view.getUint32(8, true) !== size) return undefined;
  return bytes.subarray(HEADER);
}

async function writeEntry(path: string, img: RGBImage): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, encodeEntry(img));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** Runs `task(i)` for i in [0, n) with at most `limit` in flight. */
export async function forEachConcurrent(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/**
 * Loads every path as a size x size RGB image, from the cache where it holds the file's current
 * version. Files that are missing or fail to decode are returned as failures (the caller decides,
 * through data.on_bad_image, whether that is fatal); the rest are packed in input order.
 */
export async function decodeImages(paths: readonly string[], opts: DecodeOptions): Promise<DecodeOutcome> {
  const { size } = opts;
  const fit = opts.fit ?? 'cover';
  const decoder = opts.decoder ?? defaultDecoder;
  const stride = size * size * 3;
  const t0 = performance.now();
  const pixels = new Uint8Array(paths.length * stride);
  const ok = new Uint8Array(paths.length);
  const failures: DecodeFailure[] = [];
  let decoded = 0;
  let cached = 0;
  let cacheWritable = opts.cacheDir !== undefined;
  const cacheDir = opts.cacheDir === undefined ? undefined : resolve(opts.cacheDir);

  const loadOne = async (i: number): Promise<void> => {
    const path = resolve(paths[i]!);
    let info;
    try {
      info = await stat(path, { bigint: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      failures.push({ index: i, path: paths[i]!, kind: 'missing image', detail: code === 'ENOENT' ? 'no such file' : (err as Error).message });
      return;
    }
    let entry: string | undefined;
    if (cacheDir !== undefined) {
      entry = cacheEntryPath(cacheDir, path, size, fit, info.mtimeNs, info.size);
      const hit = await readEntry(entry, size);
      if (hit) {
        pixels.set(hit, i * stride);
        ok[i] = 1;
        cached++;
        return;
      }
    }
    let img: RGBImage;
    try {
      img = await decoder(path, size, fit);
    } catch (err) {
      // InputFileError carries the decoder's reason without the path prefix.
      const detail = (err as { reason?: string }).reason ?? (err as Error).message;
      failures.push({ index: i, path: paths[i]!, kind: 'unreadable image', detail });
      return;
    }
    if (img.width !== size || img.height !== size || img.data.length !== stride) {
      throw new Error(`decoder returned ${img.width}x${img.height} (${img.data.length} bytes) for ${path}, expected ${size}x${size}x3`);
    }
    pixels.set(img.data, i * stride);
    ok[i] = 1;
    decoded++;
    if (entry !== undefined && cacheWritable) {
      try {
        await writeEntry(entry, img);
      } catch (err) {
        cacheWritable = false;
        opts.log?.(`image cache ${cacheDir} is not writable (${(err as Error).message}); going on without it`);
      }
    }
  };

  const limit = opts.concurrency ?? Math.max(4, 2 * availableParallelism());
  await forEachConcurrent(paths.length, limit, loadOne);

  // Compact in place: the kept images move down over the gaps, keeping input order.
  const kept: number[] = [];
  for (let i = 0; i < paths.length; i++) {
    if (!ok[i]) continue;
    if (kept.length !== i) pixels.copyWithin(kept.length * stride, i * stride, (i + 1) * stride);
    kept.push(i);
  }
  failures.sort((a, b) => a.index - b.index);
  return {
    pixels: kept.length === paths.length ? pixels : pixels.subarray(0, kept.length * stride),
    kept: Int32Array.from(kept),
    failures,
    decoded,
    cached,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** "1203 images (1200 from cache, 3 decoded) in 1.4 s". */
export function describeDecode(o: DecodeOutcome): string {
  return `${o.kept.length} images (${o.cached} from cache, ${o.decoded} decoded) in ${o.seconds.toFixed(1)} s`;
}
