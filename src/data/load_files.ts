/**
 * The step every file-based loader ends with: decode a list of (path, label, group) entries through
 * the decode cache into one dataset, recording the files that failed as bad items. data.keep_images
 * decides where the pixels stay: in memory (ArrayImageDataset) or in the cache on disk
 * (CachedImageDataset, read per use), for sets too large for one buffer.
 */
import { constants } from 'node:buffer';
import type { DataConfig } from '../config/schema.js';
import { UserError } from '../util/errors.js';
import type { BadItems } from './bad_items.js';
import { CachedImageDataset } from './cached_dataset.js';
import { ArrayImageDataset, type DatasetExtras, type StoredImageDataset } from './dataset.js';
import { cacheImages, decodeImages, decodeImagesInto, describeDecode, type Decoder, type DecodeStats } from './decode_cache.js';
import { SettledPrefix, StreamingImageDataset, type StreamedLoads } from './streamed_load.js';

export type KeepImages = DataConfig['keep_images'];

/**
 * data.keep_images: auto keeps a load on disk above this many bytes of pixels. Well below Node's 4 GiB
 * cap on one typed array, and a few such loads (HAM10000's three sides, patches and labelled data)
 * still fit a 24 GiB machine beside the model.
 */
export const KEEP_ON_DISK_ABOVE = 2 * 1024 ** 3;

export interface FileEntry {
  path: string;
  /** Class index, -1 for unlabelled items. */
  label: number;
  /** Index into the dataset's group names, when grouped. */
  group?: number;
}

export interface FileLoadContext {
  /** Side of the stored square images (data.image_size). */
  size: number;
  cacheDir?: string;
  /** Where decoded images stay (default auto). */
  keepImages?: KeepImages;
  /** auto's threshold in bytes (default KEEP_ON_DISK_ABOVE; tests lower it). */
  diskAbove?: number;
  /** Receives the files that are missing or fail to decode. */
  bad: BadItems;
  log: (line: string) => void;
  decoder?: Decoder;
  /**
   * Stream in-memory loads (src/data/streamed_load.ts): loadEntries returns at once with every entry's
   * item, its images arriving; failures are recorded in `bad` when they happen, not removed.
   */
  stream?: StreamedLoads;
}

export interface LoadedEntries {
  dataset: StoredImageDataset;
  /** Indices (into the entries) of the items in the dataset. */
  kept: Int32Array;
}

/** Where `count` images of side `size` stay under `mode`. */
export function resolveKeepImages(mode: KeepImages, count: number, size: number, diskAbove = KEEP_ON_DISK_ABOVE): 'memory' | 'disk' {
  if (mode !== 'auto') return mode;
  return count * size * size * 3 > diskAbove ? 'disk' : 'memory';
}

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** Decodes the entries; `what` names them in the log ("ham10000 train"). */
export async function loadEntries(
  entries: readonly FileEntry[],
  classNames: readonly string[],
  groupNames: readonly string[] | undefined,
  ctx: FileLoadContext,
  what: string,
): Promise<LoadedEntries> {
  const mode = ctx.keepImages ?? 'auto';
  const keep = resolveKeepImages(mode, entries.length, ctx.size, ctx.diskAbove);
  const bytes = entries.length * ctx.size * ctx.size * 3;
  if (keep === 'memory' && bytes > constants.MAX_LENGTH) {
    throw new UserError(
      `${what}: ${entries.length} images of ${ctx.size} px take ${gib(bytes)}, more than one buffer can hold ` +
        `(${gib(constants.MAX_LENGTH)}); set data.keep_images to disk or auto, or lower data.image_size or data.limit`,
    );
  }
  const paths = entries.map((e) => e.path);
  const opts = { size: ctx.size, cacheDir: ctx.cacheDir, decoder: ctx.decoder, log: ctx.log };
  const report = (outcome: DecodeStats) => {
    for (const f of outcome.failures) ctx.bad.add(f.kind, f.path, f.detail);
    if (entries.length > 0) {
      const where = keep === 'disk' ? `; kept on disk in ${ctx.cacheDir} (data.keep_images ${mode}, ${gib(bytes)} of pixels)` : '';
      ctx.log(`${what}: ${describeDecode(outcome, ctx.size)}${where}`);
    }
  };
  if (keep === 'memory' && ctx.stream) {
    const all = Int32Array.from(entries, (_, i) => i);
    const { labels, extras } = entryMetadata(entries, all, groupNames, what);
    const pixels = new Uint8Array(bytes);
    const progress = new SettledPrefix(entries.length);
    ctx.stream.start(progress, async () => report(await decodeImagesInto(paths, pixels, { ...opts, onSettled: (i) => progress.settle(i) })));
    return { dataset: new StreamingImageDataset(pixels, ctx.size, labels, classNames, extras, progress), kept: all };
  }
  let outcome: DecodeStats & { pixels?: Uint8Array; entries?: string[] };
  if (keep === 'disk') {
    if (ctx.cacheDir === undefined) throw new UserError(`${what}: data.keep_images: disk keeps the images in the decode cache, which needs data.cache_dir`);
    outcome = await cacheImages(paths, { ...opts, cacheDir: ctx.cacheDir });
  } else {
    outcome = await decodeImages(paths, opts);
  }
  report(outcome);
  const kept = outcome.kept;
  const { labels, extras } = entryMetadata(entries, kept, groupNames, what);
  const dataset = outcome.entries
    ? new CachedImageDataset(outcome.entries, ctx.size, ctx.size, labels, classNames, extras)
    : new ArrayImageDataset(outcome.pixels!, ctx.size, ctx.size, labels, classNames, extras);
  return { dataset, kept };
}

/** Labels, sources and groups of the entries at `rows`; only the groups present, in their original order. */
function entryMetadata(entries: readonly FileEntry[], rows: Int32Array, groupNames: readonly string[] | undefined, what: string) {
  const pick = <T>(get: (e: FileEntry) => T): T[] => Array.from(rows, (i) => get(entries[i]!));
  const labels = Int32Array.from(pick((e) => e.label));
  const extras: DatasetExtras & { sources: string[] } = { sources: pick((e) => e.path) };
  if (groupNames) {
    // A held-out split never lists empty groups.
    const raw = pick((e) => e.group ?? -1);
    const present = [...new Set(raw)].sort((a, b) => a - b);
    if (present[0] === -1) throw new Error(`${what}: grouped entries without a group`);
    extras.groups = Int32Array.from(raw, (g) => present.indexOf(g));
    extras.groupNames = present.map((g) => groupNames[g]!);
  }
  return { labels, extras };
}
