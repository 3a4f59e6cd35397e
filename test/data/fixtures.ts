/**
 * Generated data folders in the real formats, for the file loaders' tests: a HAM10000 folder (CSV and
 * JPEGs, several images per lesion, optional broken rows and files) and patch files named by
 * position. Everything is seeded, small and written under a temporary folder.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll } from 'vitest';
import { HAM10000_METADATA } from '../../src/data/ham10000.js';
import { writeHam10000Folder } from '../../src/data/ham10000_writer.js';
import { Rng } from '../../src/util/rng.js';

const created: string[] = [];
afterAll(() => {
  for (const dir of created) rmSync(dir, { recursive: true, force: true });
});

/** A scratch folder removed when the test file ends. */
export function scratchDir(prefix = 'simtrip-data-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** A width x height RGB image: a flat colour with seeded noise (so JPEGs are not trivially small). */
export function noisyImage(width: number, height: number, colour: readonly number[], rng: Rng): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    for (let c = 0; c < 3; c++) px[i * 3 + c] = Math.max(0, Math.min(255, colour[c]! + rng.int(21) - 10));
  }
  return px;
}

export async function writeImage(path: string, pixels: Uint8Array, width: number, height: number, format: 'png' | 'jpeg' | 'tiff' = 'png'): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const img = sharp(Buffer.from(pixels), { raw: { width, height, channels: 3 } });
  await (format === 'png' ? img.png() : format === 'jpeg' ? img.jpeg({ quality: 90 }) : img.tiff()).toFile(path);
}

export interface HamFixtureRow {
  lesionId: string;
  imageId: string;
  dx: string;
}

export interface HamFixture {
  root: string;
  /** Every CSV row, including the broken ones. */
  rows: HamFixtureRow[];
  /** image_id -> lesion_id for the usable rows. */
  lesionOf: Map<string, string>;
  /** image_id -> dx for the usable rows. */
  dxOf: Map<string, string>;
  /** Image ids whose file is absent, whose file is corrupt, and whose dx is unknown. */
  missing: string[];
  corrupt: string[];
  unknownDx: string[];
}

export interface HamFixtureOptions {
  /** Lesions per dx class (default: a skewed, HAM-like mix). */
  lesionsPerClass?: readonly number[];
  /** Add broken rows and files (2 missing images, 1 corrupt JPEG, 1 unknown dx row). */
  broken?: boolean;
  seed?: number;
}

/**
 * A HAM10000-style folder written by the real writer (src/data/ham10000_writer.ts): the CSV (with a
 * quoted field holding a comma and a doubled quote, as spreadsheet exports write them) and 24x18 JPEGs
 * (the 4:3 shape of the real 600x450 images) split over HAM10000_images_part_1 and _2. Lesions have 1-3
 * images; an image's flat colour encodes its dx, so tests can check labels from pixels. `broken` then
 * deletes two images, corrupts one and appends a row with an unknown dx.
 */
export async function writeHamFixture(options: HamFixtureOptions = {}): Promise<HamFixture> {
  const root = scratchDir('simtrip-ham-');
  const written = await writeHam10000Folder(root, {
    lesionsPerClass: options.lesionsPerClass ?? [6, 8, 10, 6, 10, 30, 6],
    seed: options.seed ?? 7,
    width: 24,
    height: 18,
    paint: (dx, _lesion, _k, rng, w, h) => noisyImage(w, h, dxColour(dx), rng),
    localization: (i) => (i % 5 === 0 ? 'back, upper "trunk"' : 'back'),
  });
  const rows: HamFixtureRow[] = [...written.rows];
  const lesionOf = new Map(rows.map((r) => [r.imageId, r.lesionId]));
  const dxOf = new Map(rows.map((r) => [r.imageId, r.dx]));
  const missing: string[] = [];
  const corrupt: string[] = [];
  const unknownDx: string[] = [];
  if (options.broken) {
    missing.push(rows[0]!.imageId, rows[1]!.imageId);
    corrupt.push(rows[2]!.imageId);
    for (const id of missing) rmSync(written.paths.get(id)!);
    writeFileSync(written.paths.get(corrupt[0]!)!, 'this is not a JPEG');
    rows.push({ lesionId: 'HAM_9999999', imageId: 'ISIC_9999999', dx: 'melanoma?' });
    unknownDx.push('ISIC_9999999');
    appendFileSync(join(root, HAM10000_METADATA), 'HAM_9999999,ISIC_9999999,melanoma?,histo,45.0,male,back\r\n');
  }
  return { root, rows, lesionOf, dxOf, missing, corrupt, unknownDx };
}

/** The flat colour of class c's fixture images: far apart, so JPEG noise never confuses them. */
export function dxColour(c: number): number[] {
  return [30 + 30 * c, 220 - 25 * c, c % 2 === 0 ? 60 : 190];
}

/**
 * The released SimTriplet layout: original/<slide>/<name>.png anchors (slides s1, s2 with p0..p2 each)
 * and neighbour files <name>_<k>.png under original_nearby_80000/original_nearby_8wan/<slide>/ (the
 * release's folders). Anchor p0 has neighbours 0..2, p1 has 5 and 7, p2 none (10 neighbour files),
 * plus one neighbour-like file without an anchor. Returns the root.
 */
export async function writeSimTripletRelease(side: number): Promise<string> {
  const root = join(scratchDir(), 'train');
  const rng = new Rng(2);
  const near = join(root, 'original_nearby_80000', 'original_nearby_8wan');
  for (const [s, slide] of ['s1', 's2'].entries()) {
    for (let a = 0; a < 3; a++) {
      await writeImage(join(root, 'original', slide, `p${a}.png`), noisyImage(side, side, [50 * s, 40 * a, 0], rng), side, side);
      const ks = a === 0 ? [0, 1, 2] : a === 1 ? [5, 7] : [];
      for (const k of ks) await writeImage(join(near, slide, `p${a}_${k}.png`), noisyImage(side, side, [50 * s, 40 * a, 100 + 10 * k], rng), side, side);
    }
  }
  await writeImage(join(near, 's1', 'zz_1.png'), noisyImage(side, side, [0, 0, 0], rng), side, side);
  return root;
}

/**
 * CIFAR-10's binary version in `root` (cifar-10-batches-bin): data_batch_1..5 with `perBatch` records
 * each and test_batch with `testRecords`, each record a label byte (cycling over the 10 classes) and
 * 3072 bytes of a deterministic pattern that differs by record, batch and class.
 */
export async function writeCifarBinary(root: string, perBatch: number, testRecords: number): Promise<void> {
  await mkdir(root, { recursive: true });
  const file = (records: number, salt: number) => {
    const buf = Buffer.alloc(records * 3073);
    for (let r = 0; r < records; r++) {
      buf[r * 3073] = (r + salt) % 10;
      for (let i = 1; i < 3073; i++) buf[r * 3073 + i] = (i * 7 + r * 13 + salt * 31 + ((r + salt) % 10) * 40) & 255;
    }
    return buf;
  };
  for (let f = 1; f <= 5; f++) await writeFile(join(root, `data_batch_${f}.bin`), file(perBatch, f));
  await writeFile(join(root, 'test_batch.bin'), file(testRecords, 9));
}

/** A flat labelled folder <root>/{a,b}/imgNNN.jpg of n small JPEGs, two classes; `broken` indices are written as garbage. */
export async function writeFlatJpegFolder(n: number, broken: number[] = []): Promise<string> {
  const root = scratchDir('simtrip-stream-');
  const rng = new Rng('stream-folder');
  for (let i = 0; i < n; i++) {
    const path = join(root, i % 2 ? 'b' : 'a', `img${String(i).padStart(3, '0')}.jpg`);
    await writeImage(path, noisyImage(30, 20, i % 2 ? [40, 90, 200] : [200, 90, 40], rng), 30, 20, 'jpeg');
    if (broken.includes(i)) writeFileSync(path, 'not a jpeg');
  }
  return root;
}
