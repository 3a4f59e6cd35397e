/**
 * data.keep_images: disk keeps file-based data in the decode cache and reads each image per use
 * (CachedImageDataset). It must give exactly what memory gives, for every file kind, and fail clearly
 * when the cache cannot hold the images or loses an entry after loading.
 */
import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { BadItems } from '../../src/data/bad_items.js';
import { CachedImageDataset } from '../../src/data/cached_dataset.js';
import { ArrayImageDataset, type DataSplits, type ImageDataset } from '../../src/data/dataset.js';
import { loadDataSplits } from '../../src/data/index.js';
import { KEEP_ON_DISK_ABOVE, loadEntries, resolveKeepImages } from '../../src/data/load_files.js';
import { writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { InputFileError, UserError } from '../../src/util/errors.js';
import { scratchDir, writeHamFixture, writeSimTripletRelease } from './fixtures.js';

const S = 8; // image side

/** Same items: metadata and every image's bytes (an empty split, e.g. patches without labelled data, holds no pixels either way). */
function expectSameDataset(disk: ImageDataset, memory: ImageDataset): void {
  if (memory.size > 0) {
    expect(disk).toBeInstanceOf(CachedImageDataset);
    expect(memory).toBeInstanceOf(ArrayImageDataset);
  }
  expect(disk.size).toBe(memory.size);
  expect([disk.height, disk.width]).toEqual([memory.height, memory.width]);
  expect(Array.from(disk.labels)).toEqual(Array.from(memory.labels));
  expect(disk.classNames).toEqual(memory.classNames);
  expect(disk.groups && Array.from(disk.groups)).toEqual(memory.groups && Array.from(memory.groups));
  expect(disk.groupNames).toEqual(memory.groupNames);
  expect(disk.sources).toEqual(memory.sources);
  for (let i = 0; i < memory.size; i++) expect(Buffer.from(disk.image(i)).equals(Buffer.from(memory.image(i))), `item ${i}`).toBe(true);
}

/** Same splits and neighbours, the neighbour pool (with the release's neighbour-only files) included. */
function expectSameSplits(disk: DataSplits, memory: DataSplits): void {
  expectSameDataset(disk.train, memory.train);
  expectSameDataset(disk.test, memory.test);
  for (const key of ['val', 'probeTrain'] as const) {
    expect(disk[key] === undefined).toBe(memory[key] === undefined);
    if (memory[key]) expectSameDataset(disk[key]!, memory[key]!);
  }
  expect(disk.neighbours === undefined).toBe(memory.neighbours === undefined);
  if (memory.neighbours) {
    const [d, m] = [disk.neighbours!, memory.neighbours];
    expectSameDataset(d.images, m.images);
    for (let i = 0; i < memory.train.size; i++) {
      expect(d.count(i)).toBe(m.count(i));
      for (let epoch = 0; epoch < 3; epoch++) expect(d.sample(i, 5, epoch)).toBe(m.sample(i, 5, epoch));
    }
  }
}

/** Loads `data` both ways, each through its own cache folder (so disk mode decodes and writes), and a warm disk load. */
async function loadBothWays(data: Record<string, unknown>): Promise<{ memory: DataSplits; disk: DataSplits; warm: DataSplits; warmLog: string[] }> {
  const dir = scratchDir();
  const load = (keep: string, cache: string, log?: (l: string) => void) =>
    loadDataSplits(DataSchema.parse({ image_size: S, ...data, keep_images: keep, cache_dir: join(dir, cache) }), 1, { log });
  const memory = await load('memory', 'm');
  const disk = await load('disk', 'd');
  const warmLog: string[] = [];
  const warm = await load('disk', 'd', (l) => warmLog.push(l));
  return { memory, disk, warm, warmLog };
}

describe('data.keep_images: disk gives the same data as memory', () => {
  it('patches with neighbours and a labelled folder (written synthetic slides)', async () => {
    const dir = scratchDir();
    const slidesCfg = DataSchema.parse({ slides: { train_slides: 2, eval_slides: 2, grid: 4, patch_size: S, classes: 2, gap_fraction: 0.2 } }).slides;
    const slides = await writeSyntheticSlides(dir, slidesCfg, 4);
    const { memory, disk, warm, warmLog } = await loadBothWays({ kind: 'patches', root: slides.patchesDir, labelled: { root: slides.labelledDir } });
    expect(memory.train.size).toBe(slides.patches);
    expect(memory.probeTrain!.size + memory.test.size).toBe(slides.labelledPatches);
    expectSameSplits(disk, memory);
    expectSameSplits(warm, memory);
    // The warm load only checks the entries' headers: nothing decoded.
    expect(warmLog.some((l) => /patches .*\((\d+) from cache, 0 decoded\).*kept on disk .*data\.keep_images disk/.test(l))).toBe(true);
  });

  it("the released SimTriplet layout, its neighbour-only files included", async () => {
    const root = await writeSimTripletRelease(S);
    const { memory, disk } = await loadBothWays({ kind: 'patches', root });
    expect(memory.neighbours!.images.size).toBe(memory.train.size + 10);
    expectSameSplits(disk, memory);
  });

  it('ham10000 with missing and corrupt images skipped (the kept entries stay in order)', async () => {
    const ham = await writeHamFixture({ broken: true });
    const { memory, disk } = await loadBothWays({ kind: 'ham10000', root: ham.root, on_bad_image: 'skip' });
    expect(memory.val!.size).toBeGreaterThan(0);
    expectSameSplits(disk, memory);
  });

  it('select and head carry labels, renumbered groups and sources over like ArrayImageDataset', async () => {
    const root = await writeSimTripletRelease(S);
    const { memory, disk } = await loadBothWays({ kind: 'patches', root });
    const [d, m] = [disk.neighbours!.images as CachedImageDataset, memory.neighbours!.images as ArrayImageDataset];
    // Items of slide s2 only, out of order: groups renumber to [0] with groupNames ['s2'].
    const pick = Int32Array.from([15, 4, 3, 12]);
    expectSameDataset(d.select(pick), m.select(pick));
    expect(d.select(pick).groupNames).toEqual(['s2']);
    expectSameDataset(d.head(5), m.head(5));
  });
});

describe('data.keep_images: auto', () => {
  it('keeps a load on disk when its pixels exceed the threshold (2 GiB by default)', async () => {
    expect(KEEP_ON_DISK_ABOVE).toBe(2 * 1024 ** 3);
    // 80,000 patches at 128 px: 3.7 GiB; HAM10000 at 224 px: 1.4 GiB.
    expect(resolveKeepImages('auto', 80_000, 128)).toBe('disk');
    expect(resolveKeepImages('auto', 10_015, 224)).toBe('memory');
    expect(resolveKeepImages('memory', 80_000, 128)).toBe('memory');
    expect(resolveKeepImages('disk', 1, 8)).toBe('disk');

    const root = await writeSimTripletRelease(S);
    const pool = 16 * S * S * 3; // 6 anchors + 10 neighbour files
    const load = (above: number) =>
      loadDataSplits(DataSchema.parse({ kind: 'patches', root, image_size: S, cache_dir: join(root, '..', 'cache') }), 1, { keepOnDiskAbove: above });
    expect((await load(pool - 1)).neighbours!.images).toBeInstanceOf(CachedImageDataset);
    expect((await load(pool)).neighbours!.images).toBeInstanceOf(ArrayImageDataset);
  });
});

describe('data.keep_images: disk errors', () => {
  it('names the entry and the source image when an entry is deleted, truncated or overwritten after loading', async () => {
    const root = await writeSimTripletRelease(S);
    const cacheDir = join(root, '..', 'cache');
    const splits = await loadDataSplits(DataSchema.parse({ kind: 'patches', root, image_size: S, cache_dir: cacheDir, keep_images: 'disk' }), 1);
    const ds = splits.train as CachedImageDataset;
    const expectError = (i: number, reason: RegExp) => {
      const err = (() => {
        try {
          ds.image(i);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(InputFileError);
      expect((err as InputFileError).path).toBe(ds.entries[i]);
      expect((err as Error).message).toContain(ds.sources[i]!);
      expect((err as Error).message).toMatch(reason);
    };
    rmSync(ds.entries[0]!);
    expectError(0, /entry is gone/);
    truncateSync(ds.entries[1]!, 100);
    expectError(1, /not a whole 8x8 entry \(100 bytes, expected 224\)/);
    // Right length, wrong header (another size's entry, or garbage).
    writeFileSync(ds.entries[2]!, Buffer.alloc(32 + S * S * 3, 7));
    expectError(2, /not a whole 8x8 entry/);
    // The other items still read.
    expect(ds.image(3)).toHaveLength(S * S * 3);
  });

  it('says so when the cache folder cannot be written (memory mode goes on without it)', async () => {
    const root = await writeSimTripletRelease(S);
    // A file where the cache folder should be: not writable even for root.
    const blocker = join(root, '..', 'not-a-folder');
    writeFileSync(blocker, 'x');
    const cfg = (keep: string) => DataSchema.parse({ kind: 'patches', root, image_size: S, cache_dir: join(blocker, 'cache'), keep_images: keep });
    const err = await loadDataSplits(cfg('disk'), 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/data\.keep_images: disk .*not-a-folder\/cache is not writable .*data\.keep_images: memory/);
    const lines: string[] = [];
    const memory = await loadDataSplits(cfg('memory'), 1, { log: (l) => lines.push(l) });
    expect(memory.train.size).toBe(6);
    expect(lines.some((l) => /not writable.*going on without it/.test(l))).toBe(true);
  });

  it('memory mode refuses a load larger than one buffer, pointing at keep_images', async () => {
    // 90,000 entries at 128 px (4.1 GiB): refused before any file is touched, so the paths need not exist.
    const entries = Array.from({ length: 90_000 }, (_, i) => ({ path: `/nonexistent/${i}.png`, label: -1 }));
    const ctx = { size: 128, keepImages: 'memory' as const, bad: new BadItems(), log: () => {} };
    const err = await loadEntries(entries, [], undefined, ctx, 'patches').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/patches: 90000 images of 128 px take 4\.12 GiB, more than one buffer can hold \(4\.00 GiB\); set data\.keep_images to disk or auto/);
  });

  it('needs the decode cache', async () => {
    const root = await writeSimTripletRelease(S);
    const ctx = { size: S, keepImages: 'disk' as const, bad: new BadItems(), log: () => {} };
    const err = await loadEntries([{ path: join(root, 'original', 's1', 'p0.png'), label: -1 }], [], undefined, ctx, 'test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/data\.keep_images: disk .*needs data\.cache_dir/);
  });
});
