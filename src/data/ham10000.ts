/**
 * HAM10000 dermoscopy images (SPEC §5): HAM10000_metadata.csv (lesion_id, image_id, dx, ...) and the
 * JPEGs `<image_id>.jpg` anywhere below the root (the release ships HAM10000_images_part_1 and _2).
 *
 * The train/val/test split keeps all images of a lesion on one side (several images of one lesion
 * on both sides would leak: BiT-SimSiam's released split shared 373 lesions between train and
 * validation), is stratified by dx so the rare classes (df, vasc) appear on every side, and is
 * seeded. It is drawn over the CSV rows, not over the files that happen to decode, so the same CSV
 * and seed give the same split whatever is broken on disk; it is stored as JSON (<run>/split.json)
 * and can be reused with data.split_file.
 *
 * Items within a side are ordered by image_id. Images are stored as image_size x image_size: the
 * shorter side (450 px) is scaled to image_size and the centre square kept ('cover'), which keeps the
 * aspect ratio (lesion shape and symmetry are diagnostic) and drops 75 px of mostly skin at either
 * end of the 600 px width. The augmentation's random resized crops then work on that square.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { DataConfig } from '../config/schema.js';
import { listImagesRecursive } from '../io/image.js';
import { InputFileError } from '../util/errors.js';
import { CsvSyntaxError, parseCsv } from './csv.js';
import type { StoredImageDataset } from './dataset.js';
import { warnEmptiedClasses } from './limits.js';
import { loadEntries, type FileEntry, type FileLoadContext } from './load_files.js';
import { groupedStratifiedSplit } from './split.js';

export const HAM10000_CLASS_NAMES = ['akiec', 'bcc', 'bkl', 'df', 'mel', 'nv', 'vasc'] as const;
export const HAM10000_METADATA = 'HAM10000_metadata.csv';
export const SIDES = ['train', 'val', 'test'] as const;
export type Side = (typeof SIDES)[number];

export interface HamRow {
  lesionId: string;
  imageId: string;
  /** Index into HAM10000_CLASS_NAMES. */
  label: number;
  /** 1-based CSV line (for messages). */
  line: number;
}

/**
 * Reads the metadata. Structural problems (missing columns, wrong field counts, duplicate image ids)
 * are errors in the file; a row with an unknown dx goes to `bad` (kind 'unknown dx') and is left out.
 */
export interface HamMetadata {
  /** The usable rows (known dx), in file order. */
  rows: HamRow[];
  /** Every image id of the file, usable or not. */
  allIds: Set<string>;
}

export async function readHamMetadata(csvPath: string, bad: FileLoadContext['bad']): Promise<HamMetadata> {
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputFileError(csvPath, code === 'ENOENT' ? `not found (data.root must hold ${HAM10000_METADATA} and the images)` : (err as Error).message);
  }
  let records;
  try {
    records = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw new InputFileError(csvPath, err.message);
    throw err;
  }
  if (records.length === 0) throw new InputFileError(csvPath, 'empty file');
  const header = records[0]!.fields.map((f) => f.trim().toLowerCase());
  const column = (name: string) => {
    const at = header.indexOf(name);
    if (at < 0) throw new InputFileError(csvPath, `no '${name}' column (header: ${header.join(',')})`);
    return at;
  };
  const [lesionCol, imageCol, dxCol] = [column('lesion_id'), column('image_id'), column('dx')];
  const rows: HamRow[] = [];
  const seen = new Map<string, number>();
  for (const { fields, line } of records.slice(1)) {
    if (fields.length !== header.length) {
      throw new InputFileError(csvPath, `line ${line}: ${fields.length} fields, the header has ${header.length}`);
    }
    const imageId = fields[imageCol]!.trim();
    if (imageId === '') throw new InputFileError(csvPath, `line ${line}: empty image_id`);
    const earlier = seen.get(imageId);
    if (earlier !== undefined) throw new InputFileError(csvPath, `line ${line}: image_id ${imageId} already on line ${earlier}`);
    seen.set(imageId, line);
    const dx = fields[dxCol]!.trim().toLowerCase();
    const label = (HAM10000_CLASS_NAMES as readonly string[]).indexOf(dx);
    if (label < 0) {
      bad.add('unknown dx', `${csvPath}:${line}`, `${imageId} has dx '${dx}' (known: ${HAM10000_CLASS_NAMES.join(', ')})`);
      continue;
    }
    // An image without a lesion id is its own lesion: it can then leak nothing.
    const lesionId = fields[lesionCol]!.trim() || `image:${imageId}`;
    rows.push({ lesionId, imageId, label, line });
  }
  return { rows, allIds: new Set(seen.keys()) };
}

export interface SplitCounts {
  images: number;
  lesions: number;
  dx: Record<string, number>;
}

/** The JSON stored as <run>/split.json. */
export interface HamSplitFile {
  format: 'simtrip-split';
  version: 1;
  dataset: 'ham10000';
  seed: number;
  fractions: Record<Side, number>;
  group_by: 'lesion_id';
  stratify_by: 'dx';
  counts: Record<Side, SplitCounts>;
  /** image_id -> side, sorted by image_id. */
  images: Record<string, Side>;
}

function countSides(rows: readonly HamRow[], sideOf: (r: HamRow) => Side): Record<Side, SplitCounts> {
  const counts = Object.fromEntries(
    SIDES.map((s) => [s, { images: 0, lesions: 0, dx: Object.fromEntries(HAM10000_CLASS_NAMES.map((c) => [c, 0])) }]),
  ) as Record<Side, SplitCounts>;
  const lesions = new Map<Side, Set<string>>(SIDES.map((s) => [s, new Set()]));
  for (const r of rows) {
    const c = counts[sideOf(r)];
    c.images++;
    c.dx[HAM10000_CLASS_NAMES[r.label]!]!++;
    lesions.get(sideOf(r))!.add(r.lesionId);
  }
  for (const s of SIDES) counts[s].lesions = lesions.get(s)!.size;
  return counts;
}

function byImageId(a: HamRow, b: HamRow): number {
  return a.imageId < b.imageId ? -1 : a.imageId > b.imageId ? 1 : 0;
}

/** Draws the lesion-grouped, dx-stratified split of the rows. */
export function drawHamSplit(rows: readonly HamRow[], fractions: Record<Side, number>, seed: number): HamSplitFile {
  const sorted = [...rows].sort(byImageId);
  const side = groupedStratifiedSplit(
    sorted.map((r) => ({ group: r.lesionId, label: r.label })),
    SIDES.map((s) => fractions[s]),
    seed,
  );
  const images: Record<string, Side> = {};
  sorted.forEach((r, i) => (images[r.imageId] = SIDES[side[i]!]!));
  return {
    format: 'simtrip-split',
    version: 1,
    dataset: 'ham10000',
    seed,
    fractions: { ...fractions },
    group_by: 'lesion_id',
    stratify_by: 'dx',
    counts: countSides(sorted, (r) => images[r.imageId]!),
    images,
  };
}

/**
 * Reads a stored split and checks it against the metadata: every image id must be in the CSV,
 * every usable CSV row must have a side, and no lesion may sit on two sides.
 */
export async function readHamSplitFile(path: string, rows: readonly HamRow[], allIds: ReadonlySet<string>): Promise<HamSplitFile> {
  let json: HamSplitFile;
  try {
    json = JSON.parse(await readFile(path, 'utf8')) as HamSplitFile;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputFileError(path, code === 'ENOENT' ? 'split file not found' : `not a split file: ${(err as Error).message}`);
  }
  if (json?.format !== 'simtrip-split' || json.dataset !== 'ham10000' || typeof json.images !== 'object' || json.images === null) {
    throw new InputFileError(path, "not a simtrip HAM10000 split (expected format 'simtrip-split', dataset 'ham10000', images)");
  }
  const ids = Object.keys(json.images);
  const badSide = ids.filter((id) => !(SIDES as readonly string[]).includes(json.images[id]!));
  if (badSide.length > 0) {
    throw new InputFileError(path, `${badSide.length} image(s) with a side other than train/val/test, e.g. ${badSide.slice(0, 3).map((id) => `${id}: ${String(json.images[id])}`).join(', ')}`);
  }
  const unknown = ids.filter((id) => !allIds.has(id));
  if (unknown.length > 0) {
    throw new InputFileError(path, `${unknown.length} image id(s) not in ${HAM10000_METADATA}, e.g. ${unknown.slice(0, 3).join(', ')} (a split of another copy of the data?)`);
  }
  const unassigned = rows.filter((r) => json.images[r.imageId] === undefined);
  if (unassigned.length > 0) {
    throw new InputFileError(path, `${unassigned.length} image(s) of ${HAM10000_METADATA} have no side, e.g. ${unassigned.slice(0, 3).map((r) => r.imageId).join(', ')}`);
  }
  const lesionSide = new Map<string, Side>();
  const leaks = new Set<string>();
  for (const r of rows) {
    const s = json.images[r.imageId]!;
    const before = lesionSide.get(r.lesionId);
    if (before !== undefined && before !== s) leaks.add(r.lesionId);
    lesionSide.set(r.lesionId, s);
  }
  if (leaks.size > 0) {
    throw new InputFileError(path, `${leaks.size} lesion(s) have images on two sides, e.g. ${[...leaks].slice(0, 3).join(', ')}`);
  }
  return json;
}

/** image_id -> file, for every image file below the root (the first by path when an id repeats). */
async function indexImages(root: string): Promise<Map<string, string>> {
  const byId = new Map<string, string>();
  for (const path of await listImagesRecursive(root)) {
    const id = basename(path, extname(path));
    if (!byId.has(id)) byId.set(id, path);
  }
  return byId;
}

export interface HamSplits {
  train: StoredImageDataset;
  val: StoredImageDataset;
  test: StoredImageDataset;
  split: HamSplitFile;
  /** Where the split came from: 'drawn (seed N)' or the split file. */
  splitSource: string;
}

export interface HamOptions {
  seed: number;
  /** With 'error', missing images and unknown dx rows fail before any decoding. */
  onBadImage: DataConfig['on_bad_image'];
  /** Caps per side (data.limit for train, data.test_limit for val and test). */
  limits?: { train?: number; test?: number };
  /** The config keys the caps came from, for the line about classes a cap empties. */
  limitKeys?: { train: string; test: string };
}

/**
 * Reads the metadata, draws or reads the split and decodes each side. Bad inputs are collected in
 * ctx.bad; the caller applies data.on_bad_image to them.
 */
export async function loadHam10000(root: string, cfg: Pick<DataConfig, 'split' | 'split_file'>, opts: HamOptions, ctx: FileLoadContext): Promise<HamSplits> {
  const csvPath = join(root, HAM10000_METADATA);
  const { rows, allIds } = await readHamMetadata(csvPath, ctx.bad);
  const split = cfg.split_file ? await readHamSplitFile(cfg.split_file, rows, allIds) : drawHamSplit(rows, cfg.split, opts.seed);
  const splitSource = cfg.split_file ? `split file ${cfg.split_file}` : `drawn (seed ${opts.seed})`;

  const files = await indexImages(root);
  const entriesOf = (side: Side, limit: number | undefined): FileEntry[] => {
    const chosen = rows.filter((r) => split.images[r.imageId] === side).sort(byImageId);
    const out: FileEntry[] = [];
    for (const r of chosen) {
      if (limit !== undefined && out.length >= limit) break;
      const path = files.get(r.imageId);
      if (path === undefined) ctx.bad.add('missing image', join(root, `${r.imageId}.jpg`), `listed on line ${r.line}, not found below ${root}`);
      else out.push({ path, label: r.label });
    }
    return out;
  };
  const limits = opts.limits ?? {};
  const keys = opts.limitKeys ?? { train: 'data.limit', test: 'data.test_limit' };
  const limitKeys = { train: keys.train, val: keys.test, test: keys.test };
  const entries = { train: entriesOf('train', limits.train), val: entriesOf('val', limits.test), test: entriesOf('test', limits.test) };
  for (const side of ['train', 'val', 'test'] as const) {
    const all = rows.filter((r) => split.images[r.imageId] === side).map((r) => r.label);
    const limit = side === 'train' ? limits.train : limits.test;
    warnEmptiedClasses(limitKeys[side], limit, `ham10000 ${side}`, all, entries[side].map((e) => e.label), HAM10000_CLASS_NAMES, ctx.log);
  }
  // Fail before decoding thousands of images when the listing alone already breaks the policy.
  if (opts.onBadImage === 'error') ctx.bad.enforce('error', `ham10000 ${root}`, ctx.log);
  const load = async (side: Side) => (await loadEntries(entries[side], HAM10000_CLASS_NAMES, undefined, ctx, `ham10000 ${side}`)).dataset;
  const train = await load('train');
  const val = await load('val');
  const test = await load('test');
  return { train, val, test, split, splitSource };
}
