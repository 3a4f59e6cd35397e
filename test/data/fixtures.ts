/**
 * Generated data folders in the real formats, for the file loaders' tests: a HAM10000 folder (CSV and
 * JPEGs, several images per lesion, optional broken rows and files) and patch files named by
 * position. Everything is seeded, small and written under a temporary folder.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll } from 'vitest';
import { HAM10000_CLASS_NAMES, HAM10000_METADATA } from '../../src/data/ham10000.js';
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
 * A HAM10000-style folder: HAM10000_metadata.csv (with a quoted field holding a comma) and
 * 24x18 JPEGs (the 4:3 shape of the real 600x450 images) split over HAM10000_images_part_1 and _2.
 * Lesions have 1-3 images; an image's colour encodes its dx, so tests can check labels from pixels.
 */
export async function writeHamFixture(options: HamFixtureOptions = {}): Promise<HamFixture> {
  const root = scratchDir('simtrip-ham-');
  const rng = new Rng(options.seed ?? 7, 'ham-fixture');
  const perClass = options.lesionsPerClass ?? [6, 8, 10, 4, 10, 30, 4];
  const rows: HamFixtureRow[] = [];
  let image = 0;
  let lesion = 0;
  HAM10000_CLASS_NAMES.forEach((dx, c) => {
    for (let l = 0; l < perClass[c]!; l++) {
      const lesionId = `HAM_${String(lesion++).padStart(7, '0')}`;
      const images = 1 + rng.int(3);
      for (let k = 0; k < images; k++) rows.push({ lesionId, imageId: `ISIC_${String(1000000 + image++ * 7)}`, dx });
    }
  });
  // Shuffle the rows: the loader must not depend on the CSV order.
  const order = rng.permutation(rows.length);
  const shuffled = Array.from(order, (i) => rows[i]!);
  const missing: string[] = [];
  const corrupt: string[] = [];
  const unknownDx: string[] = [];
  if (options.broken) {
    missing.push(shuffled[0]!.imageId, shuffled[1]!.imageId);
    corrupt.push(shuffled[2]!.imageId);
    shuffled.push({ lesionId: 'HAM_9999999', imageId: 'ISIC_9999999', dx: 'melanoma?' });
    unknownDx.push('ISIC_9999999');
  }
  const lines = ['lesion_id,image_id,dx,dx_type,age,sex,localization'];
  shuffled.forEach((r, i) => {
    // A quoted field with a comma and a doubled quote, as spreadsheet exports write them.
    const localization = i % 5 === 0 ? '"back, upper ""trunk"""' : 'back';
    lines.push(`${r.lesionId},${r.imageId},${r.dx},histo,45.0,male,${localization}`);
  });
  writeFileSync(join(root, HAM10000_METADATA), `${lines.join('\r\n')}\r\n`);
  const lesionOf = new Map<string, string>();
  const dxOf = new Map<string, string>();
  for (const [i, r] of shuffled.entries()) {
    const c = HAM10000_CLASS_NAMES.indexOf(r.dx as (typeof HAM10000_CLASS_NAMES)[number]);
    if (c >= 0) {
      lesionOf.set(r.imageId, r.lesionId);
      dxOf.set(r.imageId, r.dx);
    }
    if (missing.includes(r.imageId)) continue;
    const path = join(root, i % 2 === 0 ? 'HAM10000_images_part_1' : 'HAM10000_images_part_2', `${r.imageId}.jpg`);
    if (corrupt.includes(r.imageId)) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, 'this is not a JPEG');
      continue;
    }
    await writeImage(path, noisyImage(24, 18, dxColour(Math.max(c, 0)), rng), 24, 18, 'jpeg');
  }
  return { root, rows: shuffled, lesionOf, dxOf, missing, corrupt, unknownDx };
}

/** The flat colour of class c's fixture images: far apart, so JPEG noise never confuses them. */
export function dxColour(c: number): number[] {
  return [30 + 30 * c, 220 - 25 * c, c % 2 === 0 ? 60 : 190];
}
