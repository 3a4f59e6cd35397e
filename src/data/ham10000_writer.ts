/**
 * Writes a folder in the HAM10000 release's format: HAM10000_metadata.csv (lesion_id, image_id, dx,
 * dx_type, age, sex, localization) and one JPEG per image, `<image_id>.jpg`, alternating between
 * HAM10000_images_part_1 and HAM10000_images_part_2. Lesions have one to three images each (the
 * release averages 1.3), and the CSV rows are shuffled, so a loader can rely on neither order.
 *
 * Images come from the procedural lesion painter (synthetic_lesions.ts) unless a test passes its own.
 * Used by `simtrip synth ham10000` (try the HAM10000 presets offline), the data benchmark and the
 * loader tests.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSharp } from '../util/sharp.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { csvField } from './csv.js';
import { forEachConcurrent } from './decode_cache.js';
import { HAM10000_CLASS_NAMES, HAM10000_METADATA } from './ham10000.js';
import { drawLesion, renderLesion } from './synthetic_lesions.js';

export const HAM10000_PARTS = ['HAM10000_images_part_1', 'HAM10000_images_part_2'] as const;

/** Lesions per dx in the HAM10000 release (akiec, bcc, bkl, df, mel, nv, vasc): 7470 in all. */
export const HAM10000_LESIONS = [228, 327, 727, 73, 614, 5403, 98] as const;

/** Paints image `k` of a lesion of class `dx` as width x height RGB (HWC uint8). */
export type LesionPainter = (dx: number, lesion: number, k: number, rng: Rng, width: number, height: number) => Uint8Array;

export interface HamWriteOptions {
  /** Lesions per dx class in HAM10000_CLASS_NAMES order; or `lesions` in all, mixed like the release. */
  lesionsPerClass?: readonly number[];
  lesions?: number;
  /** Image size (default 600 x 450, the release's). */
  width?: number;
  height?: number;
  seed?: number;
  /** Replaces the procedural painter (tests paint flat colours to tell which file an item came from). */
  paint?: LesionPainter;
  /** The CSV's localization of row i (default: drawn from the release's sites). */
  localization?: (row: number) => string;
  /** Called after every written image. */
  onProgress?: (done: number, total: number) => void;
}

export interface HamRowWritten {
  lesionId: string;
  imageId: string;
  dx: string;
}

export interface WrittenHam10000 {
  root: string;
  /** The CSV rows in file order. */
  rows: HamRowWritten[];
  /** Where each image went, by image_id. */
  paths: Map<string, string>;
  lesions: number;
}

/**
 * `total` lesions split over the 7 classes like the release, with at least `min` per class when
 * there are enough lesions; the rest is shared in proportion to the release's counts (largest
 * remainders). Five lesions of 1-3 images each always put every class on every side of the default
 * 70/15/15 split (checked over all size combinations), which the release's mix alone would not give
 * a small folder (df is 1 % of the lesions).
 */
export function hamLesionMix(total: number, min = 5): number[] {
  const k = HAM10000_LESIONS.length;
  if (!Number.isInteger(total) || total < k) throw new UserError(`lesions: need at least ${k} (one per dx class), got ${total}`);
  const floor = Math.min(min, Math.floor(total / k));
  const rest = total - floor * k;
  const sum = HAM10000_LESIONS.reduce((a, b) => a + b, 0);
  const exact = HAM10000_LESIONS.map((n) => (rest * n) / sum);
  const counts = exact.map((e) => floor + Math.floor(e));
  let left = total - counts.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (left-- <= 0) break;
    counts[i]!++;
  }
  return counts;
}

const DX_TYPES = ['histo', 'follow_up', 'consensus', 'confocal'] as const;
const SEXES = ['male', 'female'] as const;
const SITES = ['back', 'lower extremity', 'trunk', 'upper extremity', 'abdomen', 'face', 'chest', 'foot', 'neck', 'scalp'] as const;

/** Writes the folder (see the file comment) under `root`, which is created if needed. */
export async function writeHam10000Folder(root: string, options: HamWriteOptions = {}): Promise<WrittenHam10000> {
  const seed = options.seed ?? 0;
  const perClass = options.lesionsPerClass ?? hamLesionMix(options.lesions ?? 100);
  if (perClass.length !== HAM10000_CLASS_NAMES.length) throw new Error(`lesionsPerClass needs ${HAM10000_CLASS_NAMES.length} counts, got ${perClass.length}`);
  const width = options.width ?? 600;
  const height = options.height ?? 450;
  const rng = new Rng(seed, 'ham10000-folder');
  const rows: (HamRowWritten & { label: number; lesion: number; k: number })[] = [];
  let image = 0;
  let lesion = 0;
  HAM10000_CLASS_NAMES.forEach((dx, label) => {
    for (let l = 0; l < perClass[label]!; l++, lesion++) {
      const lesionId = `HAM_${String(lesion).padStart(7, '0')}`;
      const images = 1 + rng.int(3);
      // Image ids continue the release's numbering style (ISIC_0024306 is its first).
      for (let k = 0; k < images; k++) rows.push({ lesionId, imageId: `ISIC_${String(24306 + image++).padStart(7, '0')}`, dx, label, lesion, k });
    }
  });
  const order = rng.permutation(rows.length);
  const shuffled = Array.from(order, (i) => rows[i]!);
  const lines = ['lesion_id,image_id,dx,dx_type,age,sex,localization'];
  shuffled.forEach((r, i) => {
    const site = options.localization?.(i) ?? SITES[rng.int(SITES.length)]!;
    const age = (5 * (4 + rng.int(14))).toFixed(1);
    lines.push([r.lesionId, r.imageId, r.dx, DX_TYPES[rng.int(DX_TYPES.length)]!, age, SEXES[rng.int(2)]!, site].map(csvField).join(','));
  });
  for (const part of HAM10000_PARTS) await mkdir(join(root, part), { recursive: true });
  await writeFile(join(root, HAM10000_METADATA), `${lines.join('\r\n')}\r\n`);

  // A lesion's appearance depends on (seed, lesion) only; each image's own stream draws its view of it.
  const paint = options.paint ?? ((dx, l, _k, imageRng, w, h) => renderLesion(drawLesion(dx, new Rng(seed, 'lesion', l)), w, h, imageRng));
  const paths = new Map<string, string>();
  shuffled.forEach((r, i) => paths.set(r.imageId, join(root, HAM10000_PARTS[i % 2]!, `${r.imageId}.jpg`)));
  let done = 0;
  // Painting is synchronous JavaScript; JPEG encoding runs on sharp's threads, overlapping the next paint.
  await forEachConcurrent(shuffled.length, 4, async (i) => {
    const r = shuffled[i]!;
    const pixels = paint(r.label, r.lesion, r.k, new Rng(seed, 'ham10000-image', r.lesion, r.k), width, height);
    const sharp = await loadSharp();
    await sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toFile(paths.get(r.imageId)!);
    options.onProgress?.(++done, shuffled.length);
  });
  return { root, rows: shuffled.map(({ lesionId, imageId, dx }) => ({ lesionId, imageId, dx })), paths, lesions: lesion };
}
