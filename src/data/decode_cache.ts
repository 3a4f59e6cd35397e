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
 *
 * Two ways to load (data.keep_images): decodeImages returns all pixels in one buffer; cacheImages
 * (too many images for memory) makes sure every image has a valid entry and returns the entry paths,
 * and readCachedImage then reads one image's pixels when it is used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { readImageResized, resizeDecoderId, type ImageSource, type RGBImage } from '../io/image.js';
import { InputFileError, UserError } from '../util/errors.js';

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
  /** Called once per path when it has loaded or failed (a streamed load tracks its ready prefix). */
  onSettled?: (index: number) => void;
}

export interface DecodeFailure {
  index: number;
  path: string;
  kind: 'missing image' | 'unreadable image';
  detail: string;
}

/** What a load did, whichever way it keeps the images. */
export interface DecodeStats {
  /** What the kept images were before decoding (from the file or its cache entry); undefined where unknown. */
  sources: (ImageSource | undefined)[];
  /** Indices (into the input paths) of the images that loaded, in input order. */
  kept: Int32Array;
  failures: DecodeFailure[];
  /** Images decoded from their file, and images read (or, from cacheImages, validated) from the cache. */
  decoded: number;
  cached: number;
  seconds: number;
}

export interface DecodeOutcome extends DecodeStats {
  /** Pixels of the kept images, in order, size*size*3 bytes each. */
  pixels: Uint8Array;
}

export interface CachedOutcome extends DecodeStats {
  /** The cache entry of each kept image, in order (read with readCachedImage). */
  entries: string[];
}

// v2 adds the source image's size, channels and depth, so a load from the cache can say, as a first
// load does, how many images were resized from other sizes or converted to RGB.
const MAGIC = 0x32435453; // 'STC2' little-endian
const HEADER = 32;
const CACHE_VERSION = 'images-v2';
const FLAG_KNOWN = 1;
const FLAG_ALPHA = 2;
const FLAG_DEEP = 4;

export const defaultDecoder: Decoder = (path, size, fit) => readImageResized(path, size, { fit });

/**
 * Where the entry of one file version lives. The key names the JPEG decoder too: native and sharp
 * pixels differ by a grey level or two, so a cache filled by one is not read by the other.
 */
export function cacheEntryPath(cacheDir: string, absPath: string, size: number, fit: Fit, mtimeNs: bigint, bytes: bigint): string {
  const key = createHash('sha256').update(JSON.stringify([absPath, size, fit, mtimeNs.toString(), bytes.toString(), resizeDecoderId()])).digest('hex');
  return join(cacheDir, CACHE_VERSION, key.slice(0, 2), `${key}.rgb`);
}

function encodeEntry(img: RGBImage): Uint8Array {
  const out = new Uint8Array(HEADER + img.data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, img.height, true);
  view.setUint32(8, img.width, true);
  view.setUint32(12, 3, true);
  const src = img.source;
  if (src) {
    view.setUint32(16, src.width, true);
    view.setUint32(20, src.height, true);
    view.setUint32(24, src.channels, true);
    view.setUint32(28, FLAG_KNOWN | (src.alpha ? FLAG_ALPHA : 0) | (src.deep ? FLAG_DEEP : 0), true);
  }
  out.set(img.data, HEADER);
  return out;
}

/** The source facts an entry's header records, if it recorded them. */
function entrySource(header: Uint8Array): ImageSource | undefined {
  const view = new DataView(header.buffer, header.byteOffset, HEADER);
  const flags = view.getUint32(28, true);
  if (!(flags & FLAG_KNOWN)) return undefined;
  return { width: view.getUint32(16, true), height: view.getUint32(20, true), channels: view.getUint32(24, true), alpha: (flags & FLAG_ALPHA) !== 0, deep: (flags & FLAG_DEEP) !== 0 };
}

/** A valid entry's pixels and source facts, or undefined when absent or not a whole entry of the expected size. */
async function readEntry(path: string, size: number): Promise<{ pixels: Uint8Array; source?: ImageSource } | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.length < HEADER || !validHeader(bytes.subarray(0, HEADER), bytes.length, size)) return undefined;
  return { pixels: bytes.subarray(HEADER), source: entrySource(bytes.subarray(0, HEADER)) };
}

/** Whether the header and length of an entry are those of a size x size image. */
function validHeader(header: Uint8Array, fileBytes: number, size: number): boolean {
  if (fileBytes !== HEADER + size * size * 3) return false;
  const view = new DataView(header.buffer, header.byteOffset, HEADER);
  return view.getUint32(0, true) === MAGIC && view.getUint32(4, true) === size && view.getUint32(8, true) === size && view.getUint32(12, true) === 3;
}

/** Whether the entry exists and is a whole entry of the expected size, reading only its header: its source facts if so. */
async function entryHolds(path: string, size: number): Promise<{ source?: ImageSource } | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const header = new Uint8Array(HEADER);
    const { bytesRead } = await handle.read(header, 0, HEADER, 0);
    if (bytesRead !== HEADER || !validHeader(header, Number((await handle.stat()).size), size)) return undefined;
    return { source: entrySource(header) };
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

/**
 * One image's pixels from its entry, synchronously, into a fresh array (data.keep_images: disk reads
 * every image this way when it is used). An entry that is gone or no longer whole (the cache folder
 * cleaned or damaged since the load) is an InputFileError naming the entry and `source`, the image it
 * was decoded from.
 */
export function readCachedImage(entry: string, size: number, source: string): Uint8Array {
  const stride = size * size * 3;
  const fail = (reason: string): never => {
    throw new InputFileError(entry, `cached pixels of ${source}: ${reason}; the image cache changed after loading, run again to rebuild the entry`);
  };
  let fd: number;
  try {
    fd = openSync(entry, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'the entry is gone' : (err as Error).message);
  }
  try {
    const header = new Uint8Array(HEADER);
    const bytes = fstatSync(fd).size;
    if (readSync(fd, header, 0, HEADER, 0) !== HEADER || !validHeader(header, bytes, size)) {
      return fail(`not a whole ${size}x${size} entry (${bytes} bytes, expected ${HEADER + stride})`);
    }
    const pixels = new Uint8Array(stride);
    let at = 0;
    while (at < stride) {
      const n = readSync(fd, pixels, at, stride - at, HEADER + at);
      if (n === 0) return fail(`ends after ${HEADER + at} bytes, expected ${HEADER + stride}`);
      at += n;
    }
    return pixels;
  } finally {
    closeSync(fd);
  }
}

/**
 * Entry folders this process has made: a cold load writes thousands of entries into 256 folders, and a
 * mkdir per entry cost more CPU than decoding a small JPEG natively. A folder removed meanwhile is made
 * again on the failed write.
 */
const madeFolders = new Set<string>();

async function makeFolder(folder: string): Promise<void> {
  await mkdir(folder, { recursive: true });
  madeFolders.add(folder);
}

async function writeEntry(path: string, img: RGBImage): Promise<void> {
  const folder = dirname(path);
  if (!madeFolders.has(folder)) await makeFolder(folder);
  try {
    await writeEntryIn(path, img);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await makeFolder(folder);
    await writeEntryIn(path, img);
  }
}

async function writeEntryIn(path: string, img: RGBImage): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(temp, encodeEntry(img));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * Runs `task(i)` for i in [0, n) with at most `limit` in flight. After a task fails no new task
 * starts (those in flight finish), so an error does not go on decoding thousands of files unseen.
 */
export async function forEachConcurrent(n: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < n && !failed) {
      try {
        await task(next++);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
}

/** Where a loaded image goes: decodeImages keeps its pixels, cacheImages its entry. */
interface Sink {
  /** Serves image i from its cache entry when that holds a valid one (with the source facts it recorded). */
  hit(i: number, entry: string): Promise<{ source?: ImageSource } | undefined>;
  /** Takes a freshly decoded image; `entry` is where the cache keeps it (absent without a cache). */
  decoded(i: number, img: RGBImage, entry: string | undefined): Promise<void>;
}

/**
 * The load both ways share: stat each file, try its cache entry, else decode it. Missing and
 * undecodable files become failures; the rest are handed to the sink.
 */
async function loadAll(paths: readonly string[], opts: DecodeOptions, sink: Sink): Promise<DecodeStats> {
  const { size } = opts;
  const fit = opts.fit ?? 'cover';
  const decoder = opts.decoder ?? defaultDecoder;
  const stride = size * size * 3;
  const t0 = performance.now();
  const ok = new Uint8Array(paths.length);
  const sources: (ImageSource | undefined)[] = new Array<ImageSource | undefined>(paths.length);
  const failures: DecodeFailure[] = [];
  let decoded = 0;
  let cached = 0;
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
      const hit = await sink.hit(i, entry);
      if (hit) {
        ok[i] = 1;
        sources[i] = hit.source;
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
    await sink.decoded(i, img, entry);
    ok[i] = 1;
    sources[i] = img.source;
    decoded++;
  };

  const limit = opts.concurrency ?? Math.max(4, 2 * availableParallelism());
  const settle = opts.onSettled;
  await forEachConcurrent(paths.length, limit, settle ? (i) => loadOne(i).then(() => settle(i)) : loadOne);
  failures.sort((a, b) => a.index - b.index);
  const kept: number[] = [];
  for (let i = 0; i < paths.length; i++) if (ok[i]) kept.push(i);
  return { kept: Int32Array.from(kept), sources: kept.map((i) => sources[i]), failures, decoded, cached, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Loads every path as a size x size RGB image, from the cache where it holds the file's current
 * version. Files that are missing or fail to decode are returned as failures (the caller decides,
 * through data.on_bad_image, whether that is fatal); the rest are packed in input order. A cache that
 * cannot be written is logged once and loading goes on without it.
 */
export async function decodeImages(paths: readonly string[], opts: DecodeOptions): Promise<DecodeOutcome> {
  const stride = opts.size * opts.size * 3;
  const pixels = new Uint8Array(paths.length * stride);
  const stats = await decodeImagesInto(paths, pixels, opts);
  // Compact in place: the kept images move down over the gaps, keeping input order.
  const { kept } = stats;
  kept.forEach((i, k) => {
    if (k !== i) pixels.copyWithin(k * stride, i * stride, (i + 1) * stride);
  });
  return { ...stats, pixels: kept.length === paths.length ? pixels : pixels.subarray(0, kept.length * stride) };
}

/**
 * decodeImages into `pixels` (paths.length images), each at its own path's place: a failed path's
 * image stays as it was. Readers may use an image as soon as onSettled names it.
 */
export async function decodeImagesInto(paths: readonly string[], pixels: Uint8Array, opts: DecodeOptions): Promise<DecodeStats> {
  const stride = opts.size * opts.size * 3;
  if (pixels.length !== paths.length * stride) throw new Error(`decodeImagesInto: ${pixels.length} bytes for ${paths.length} images of ${stride}`);
  let cacheWritable = true;
  return loadAll(paths, opts, {
    hit: async (i, entry) => {
      const hit = await readEntry(entry, opts.size);
      if (hit) pixels.set(hit.pixels, i * stride);
      return hit;
    },
    decoded: async (i, img, entry) => {
      pixels.set(img.data, i * stride);
      if (entry === undefined || !cacheWritable) return;
      try {
        await writeEntry(entry, img);
      } catch (err) {
        cacheWritable = false;
        opts.log?.(`image cache ${resolve(opts.cacheDir!)} is not writable (${(err as Error).message}); going on without it`);
      }
    },
  });
}

/**
 * Like decodeImages, but keeps no pixels: every loaded image gets a valid entry in the cache (an
 * existing one is checked by its header and length, without reading its pixels) and the entry paths
 * are returned. The cache is required here, so a cache that cannot be written is a UserError.
 */
export async function cacheImages(paths: readonly string[], opts: DecodeOptions & { cacheDir: string }): Promise<CachedOutcome> {
  const entries: string[] = new Array<string>(paths.length);
  const cacheDir = resolve(opts.cacheDir);
  const stats = await loadAll(paths, opts, {
    hit: async (i, entry) => {
      const valid = await entryHolds(entry, opts.size);
      if (valid) entries[i] = entry;
      return valid;
    },
    decoded: async (i, img, entry) => {
      try {
        await writeEntry(entry!, img);
      } catch (err) {
        throw new UserError(
          `data.keep_images: disk reads the images from the decode cache, but ${cacheDir} is not writable (${(err as Error).message}); ` +
            'make it writable, point data.cache_dir at a writable folder, or set data.keep_images: memory',
        );
      }
      entries[i] = entry!;
    },
  });
  return { ...stats, entries: Array.from(stats.kept, (i) => entries[i]!) };
}

/** "1203 images (1200 from cache, 3 decoded) in 1.4 s", and what was unusual about them (describeSources). */
export function describeDecode(o: DecodeStats, size: number): string {
  const unusual = describeSources(o.sources, size);
  return `${o.kept.length} images (${o.cached} from cache, ${o.decoded} decoded) in ${o.seconds.toFixed(1)} s${unusual ? `; ${unusual}` : ''}`;
}

/**
 * What a load should say once about its files: how many differ in size from the usual one (the most
 * common) and how many were not 8-bit RGB (grey, with alpha, 16-bit), all of which became size x size
 * 8-bit RGB. Undefined when every file was alike and RGB.
 */
export function describeSources(sources: readonly (ImageSource | undefined)[], size: number): string | undefined {
  const known = sources.filter((s): s is ImageSource => s !== undefined);
  if (known.length === 0) return undefined;
  const sizes = new Map<string, number>();
  for (const s of known) sizes.set(`${s.width}x${s.height}`, (sizes.get(`${s.width}x${s.height}`) ?? 0) + 1);
  const bySize = [...sizes].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const usual = bySize[0]![0];
  const others = bySize.slice(1);
  const parts: string[] = [];
  if (others.length > 0) {
    const n = others.reduce((a, [, c]) => a + c, 0);
    const listed = others.slice(0, 3).map(([wh, c]) => `${wh} x${c}`).join(', ') + (others.length > 3 ? ', ...' : '');
    parts.push(`${n} of ${known.length} differ from the usual ${usual} (${listed}) and were resized to ${size}x${size} like the rest (non-square ones centre-cropped)`);
  }
  const count = (pred: (s: ImageSource) => boolean) => known.filter(pred).length;
  const grey = count((s) => s.channels <= 2);
  const alpha = count((s) => s.alpha);
  const deep = count((s) => s.deep);
  const converted = [grey && `${grey} grayscale`, alpha && `${alpha} with an alpha channel (dropped)`, deep && `${deep} with 16-bit samples`].filter(Boolean);
  if (converted.length > 0) parts.push(`converted to 8-bit RGB: ${converted.join(', ')}`);
  return parts.length ? parts.join('; ') : undefined;
}
