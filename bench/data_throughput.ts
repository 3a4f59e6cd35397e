/**
 * Data-loading throughput: can decoding and augmentation keep up with training?
 *
 *   npm run bench:data -- [--lesions 150] [--slides 2] [--batch 32] [--seconds 2] [--workers N]
 *
 * Writes a HAM10000-format folder of 600x450 JPEGs (--lesions, about two images each) and a folder of
 * 128 px PNG patches (--slides synthetic slides of 12x12 patches) to a temp folder, then measures
 * images/s of:
 * - JPEG decode + resize with sharp, cold (no cache), at 128 and 224 px, and the patch PNGs at 128 px;
 * - the first load that also writes the decode cache, and a warm load from it;
 * - augmentation (augmentBatch: random resized crop, jitter, grayscale, blur, flip, normalise) with 2
 *   and 3 views at 32, 128 and 224 px, in this thread (augmentBatchParallel without a pool);
 * - the same on a pool of --workers threads (default: one per core; 0 skips it);
 * - data.keep_images: disk at 128 px: the cost of reading one image from its cache entry, the warm
 *   load that only checks entry headers, and augmentation from the cached dataset (2 and 3 views, in
 *   this thread and on the pool) beside the same images in memory.
 * Each figure is given per second of wall time and per CPU-second of this process (all threads):
 * the second hardly depends on what else runs on the machine. Decoding is timed once per case,
 * augmentation as the best of 5 windows (see rate()). Prints a table, then one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { AugmentSchema, SlidesSchema } from '../src/config/schema.js';
import type { Normalization } from '../src/data/augment.js';
import { CachedImageDataset } from '../src/data/cached_dataset.js';
import { ArrayImageDataset, type ImageDataset } from '../src/data/dataset.js';
import { cacheImages, decodeImages } from '../src/data/decode_cache.js';
import { writeHam10000Folder } from '../src/data/ham10000_writer.js';
import { AugmentPool, augmentBatchParallel } from '../src/data/parallel_augment.js';
import { writeSyntheticSlides } from '../src/data/synthetic_slides.js';
import { listImagesRecursive } from '../src/io/image.js';

interface Options {
  lesions: number;
  slides: number;
  batch: number;
  seconds: number;
  workers: number;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { lesions: 150, slides: 2, batch: 32, seconds: 2, workers: os.availableParallelism() };
  const keys: Record<string, keyof Options> = { '--lesions': 'lesions', '--slides': 'slides', '--batch': 'batch', '--seconds': 'seconds', '--workers': 'workers' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = keys[argv[i]!];
    const value = Number(argv[i + 1]);
    if (!key) throw new Error(`unknown flag ${argv[i]} (flags: ${Object.keys(keys).join(' ')})`);
    if (!Number.isFinite(value) || value < 0) throw new Error(`${argv[i]} needs a non-negative number, got ${argv[i + 1]}`);
    opts[key] = value;
  }
  return opts;
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;

interface Rate {
  /** Images per second of wall time: the best of 5 windows. */
  wall: number;
  /** Images per CPU-second of this process (all its threads), over all windows. */
  cpu: number;
}

/**
 * Throughput of `once` (one unit of `items` images) after a warm-up unit, in 5 windows of budget/5
 * seconds each (at least one unit). Wall time: the best window, the one least disturbed by other
 * processes on a shared machine. CPU time (process.cpuUsage, every thread of this process) hardly
 * depends on other processes: it gives the cost per image on one core and, for the worker pool, the
 * pool's overhead.
 */
async function rate(items: number, budget: number, once: (round: number) => unknown): Promise<Rate> {
  await once(-1); // warm-up: JIT, scratch buffers, worker start-up
  let best = 0;
  let round = 0;
  const cpu0 = process.cpuUsage();
  for (let w = 0; w < 5; w++) {
    const t0 = performance.now();
    let done = 0;
    while (done === 0 || seconds(t0) < budget / 5) {
      await once(round++);
      done++;
    }
    best = Math.max(best, (done * items) / seconds(t0));
  }
  const cpu = process.cpuUsage(cpu0);
  return { wall: best, cpu: (round * items) / ((cpu.user + cpu.system) / 1e6) };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const dir = await mkdtemp(join(os.tmpdir(), 'simtrip-bench-data-'));
  const rows: [string, string][] = [];
  const row = (k: string, v: string) => rows.push([k, v]);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    let t0 = performance.now();
    log(`writing ${o.lesions} lesions of 600x450 JPEGs and ${o.slides} slides of 128 px patches to ${dir} ...`);
    const ham = await writeHam10000Folder(join(dir, 'ham'), { lesions: o.lesions, seed: 0 });
    const hamWrite = ham.rows.length / seconds(t0);
    t0 = performance.now();
    const slides = await writeSyntheticSlides(join(dir, 'slides'), SlidesSchema.parse({ train_slides: o.slides, eval_slides: 1, grid: 12, patch_size: 128 }), 0);
    const slideWrite = (slides.patches + slides.labelledPatches) / seconds(t0);
    const jpegs = [...ham.paths.values()];
    const pngs = await listImagesRecursive(slides.patchesDir);

    // Decoding runs on sharp's (libvips') threads; several files in flight keep them busy.
    const decode = async (paths: string[], size: number, cacheDir?: string) => {
      const cpu0 = process.cpuUsage();
      const out = await decodeImages(paths, { size, cacheDir });
      const cpu = process.cpuUsage(cpu0);
      if (out.failures.length > 0) throw new Error(`${out.failures.length} images failed to decode: ${out.failures[0]!.detail}`);
      return { wall: paths.length / out.seconds, cpu: paths.length / ((cpu.user + cpu.system) / 1e6), out };
    };
    const cold128 = await decode(jpegs, 128);
    const cold224 = await decode(jpegs, 224);
    const cacheDir = join(dir, 'cache');
    const firstLoad = await decode(jpegs, 224, cacheDir);
    const warm = await decode(jpegs, 224, cacheDir);
    if (warm.out.cached !== jpegs.length) throw new Error(`warm load read ${warm.out.cached} of ${jpegs.length} images from the cache`);
    const patchCold = await decode(pngs, 128);
    await decode(pngs, 128, cacheDir);
    const patchWarm = await decode(pngs, 128, cacheDir);
    const both = (r: Rate) => `${r.wall.toFixed(r.wall < 100 ? 1 : 0)} img/s (${r.cpu.toFixed(r.cpu < 100 ? 1 : 0)}/CPU-s)`;
    row('files', `${jpegs.length} JPEGs 600x450 (${ham.lesions} lesions), ${pngs.length} PNG patches 128 px; ` +
      `sharp ${sharp.concurrency()} thread(s) per image, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? 4}`);
    row('write', `JPEG folder ${hamWrite.toFixed(1)} img/s (procedural painting + encode), patches ${slideWrite.toFixed(0)} img/s`);
    row('decode cold', `JPEG -> 128 px ${both(cold128)}, -> 224 px ${both(cold224)}; PNG patch -> 128 px ${both(patchCold)}`);
    row('cache', `first load (decode + write) 224 px ${both(firstLoad)}; warm 224 px ${both(warm)}, warm patches 128 px ${both(patchWarm)}`);

    // Augmentation works on the stored square images, resized to the training size (as data.image_size does).
    const cfg = AugmentSchema.parse({});
    const norm: Normalization = 'imagenet';
    const sizes = [32, 128, 224];
    const stored = new Map<number, ArrayImageDataset>();
    for (const size of sizes) {
      const out = size === 224 ? warm.out : (await decode(jpegs, size, cacheDir)).out;
      stored.set(size, new ArrayImageDataset(out.pixels, size, size, new Int32Array(out.kept.length).fill(-1), []));
    }
    // data.keep_images: disk: the 128 px images again, read from their cache entries per use.
    t0 = performance.now();
    const onDisk = await cacheImages(jpegs, { size: 128, cacheDir });
    const diskCheck = jpegs.length / seconds(t0);
    if (onDisk.cached !== jpegs.length) throw new Error(`the disk load found ${onDisk.cached} of ${jpegs.length} entries`);
    const diskDs = new CachedImageDataset(onDisk.entries, 128, 128, new Int32Array(jpegs.length).fill(-1), [], { sources: jpegs });
    const readAll = await rate(diskDs.size, o.seconds, () => {
      for (let i = 0; i < diskDs.size; i++) diskDs.image((i * 7919) % diskDs.size);
    });
    const readUs = 1e6 / readAll.wall;
    row('keep on disk', `read one 128 px image from its entry ${readUs.toFixed(0)} µs (${both(readAll)}, page cache warm); ` +
      `load checking the entries' headers ${diskCheck.toFixed(0)} img/s`);

    const augment: { size: number; views: number; workers: number; keep: 'memory' | 'disk'; img_per_s: number; views_per_s: number; img_per_cpu_s: number }[] = [];
    const measure = async (size: number, views: number, workers: number, pool: AugmentPool | undefined, keep: 'memory' | 'disk' = 'memory') => {
      const ds: ImageDataset = keep === 'disk' ? diskDs : stored.get(size)!;
      // Batches of at least 4 rows per worker, so every worker gets slices.
      const batch = Math.max(o.batch, 4 * workers);
      const idx = (r: number) => Int32Array.from({ length: batch }, (_, i) => ((r + 1) * batch + i) % ds.size);
      const r = await rate(batch, o.seconds, (round) => augmentBatchParallel(ds, idx(round), size, cfg, norm, { seed: 0, epoch: round + 1 }, views, pool));
      augment.push({ size, views, workers, keep, img_per_s: r.wall, views_per_s: r.wall * views, img_per_cpu_s: r.cpu });
      log(`augment ${size} px x${views} views${pool ? ` on ${workers} workers` : ''}${keep === 'disk' ? ' from disk' : ''}: ${both(r)}`);
    };
    const fmt = (size: number, workers: number, keep: 'memory' | 'disk' = 'memory') =>
      augment
        .filter((a) => a.size === size && a.workers === workers && a.keep === keep)
        .map((a) => `${a.views} views ${both({ wall: a.img_per_s, cpu: a.img_per_cpu_s })}, ${a.views_per_s.toFixed(0)} views/s`)
        .join('; ');
    for (const size of sizes) for (const views of [2, 3]) await measure(size, views, 0, undefined);
    for (const size of sizes) row(`augment ${size} px`, fmt(size, 0));
    for (const views of [2, 3]) await measure(128, views, 0, undefined, 'disk');
    row('  from disk', `128 px: ${fmt(128, 0, 'disk')}`);

    if (o.workers > 0) {
      const pool = await AugmentPool.create(o.workers);
      try {
        for (const size of [128, 224]) {
          for (const views of [2, 3]) await measure(size, views, o.workers, pool);
          const of = (workers: number) => augment.find((a) => a.size === size && a.views === 2 && a.workers === workers && a.keep === 'memory')!;
          row(`  ${o.workers} workers`, `${size} px: ${fmt(size, o.workers)}; x${(of(o.workers).img_per_s / of(0).img_per_s).toFixed(2)} wall, ` +
            `${(100 * of(o.workers).img_per_cpu_s / of(0).img_per_cpu_s).toFixed(0)} % CPU efficiency (2 views)`);
        }
        for (const views of [2, 3]) await measure(128, views, o.workers, pool, 'disk');
        row(`  ${o.workers} workers`, `128 px from disk: ${fmt(128, o.workers, 'disk')}`);
      } finally {
        await pool.close();
      }
    }

    const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}`;
    const load = os.loadavg()[0]!;
    process.stdout.write(`${'machine'.padEnd(14)} ${machine}, load average ${load.toFixed(1)}\n`);
    for (const [k, v] of rows) process.stdout.write(`${k.padEnd(14)} ${v}\n`);
    process.stdout.write(
      `${JSON.stringify({
        machine,
        load_average: load,
        jpegs: jpegs.length,
        patches: pngs.length,
        sharp_threads: sharp.concurrency(),
        write_jpeg_img_per_s: hamWrite,
        write_patch_img_per_s: slideWrite,
        decode_cold_128: { img_per_s: cold128.wall, img_per_cpu_s: cold128.cpu },
        decode_cold_224: { img_per_s: cold224.wall, img_per_cpu_s: cold224.cpu },
        decode_cold_patch_128: { img_per_s: patchCold.wall, img_per_cpu_s: patchCold.cpu },
        first_load_cache_write_224: { img_per_s: firstLoad.wall, img_per_cpu_s: firstLoad.cpu },
        warm_cache_224: { img_per_s: warm.wall, img_per_cpu_s: warm.cpu },
        warm_cache_patch_128: { img_per_s: patchWarm.wall, img_per_cpu_s: patchWarm.cpu },
        keep_on_disk_128: { read_us_per_image: readUs, read_img_per_cpu_s: readAll.cpu, load_check_img_per_s: diskCheck },
        augment,
      })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
