/**
 * Reader for the CIFAR-10 binary version (SPEC §5): records of 1 label byte + 32x32 R, G, B planes.
 *
 * Every expected file is checked up front (present, whole records) so a broken download fails before
 * any work, but only the bytes needed for the requested number of records are read, so smoke runs
 * with data.limit start instantly.
 */
import { existsSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputFileError } from '../util/errors.js';
import { ArrayImageDataset } from './dataset.js';

export const CIFAR10_SIDE = 32;
const PLANE = CIFAR10_SIDE * CIFAR10_SIDE;
export const CIFAR10_RECORD_BYTES = 1 + 3 * PLANE;
const RECORDS_PER_FILE = 10000;

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILE = 'test_batch.bin';
const META_FILE = 'batches.meta.txt';
const FOLDER_NAME = 'cifar-10-batches-bin';

export const CIFAR10_CLASS_NAMES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
] as const;

export interface Cifar10Options {
  /** Read at most this many training records (from data_batch_1 on). */
  trainLimit?: number;
  /** Read at most this many test records. */
  testLimit?: number;
}

export interface Cifar10Splits {
  train: ArrayImageDataset;
  test: ArrayImageDataset;
  /** The folder the files were read from (root itself or root/cifar-10-batches-bin). */
  folder: string;
}

const EXPECTED = `${CIFAR10_TRAIN_FILES[0]} … ${CIFAR10_TRAIN_FILES[4]}, ${CIFAR10_TEST_FILE}`;

/** Accepts the cifar-10-batches-bin folder itself or the folder that contains it. */
export function resolveCifar10Folder(root: string): string {
  if (!existsSync(root)) {
    throw new InputFileError(root, `folder not found (expected the ${FOLDER_NAME} folder with ${EXPECTED})`);
  }
  const nested = join(root, FOLDER_NAME);
  if (!existsSync(join(root, CIFAR10_TEST_FILE)) && existsSync(nested)) return nested;
  return root;
}

/** Fails naming every expected file that is absent, so one error lists all that needs fixing. */
function checkPresent(folder: string, names: readonly string[]): void {
  const missing = names.filter((f) => !existsSync(join(folder, f)));
  if (missing.length > 0) {
    throw new InputFileError(folder, `missing ${missing.join(', ')} (a CIFAR-10 binary folder holds ${EXPECTED})`);
  }
}

/** Record count of one file, after checking it holds whole records. */
async function recordCount(path: string): Promise<number> {
  const { size } = await stat(path);
  if (size % CIFAR10_RECORD_BYTES !== 0 || size === 0) {
    throw new InputFileError(
      path,
      `size ${size} bytes is not a positive multiple of the ${CIFAR10_RECORD_BYTES}-byte record ` +
        `(a complete file is ${RECORDS_PER_FILE * CIFAR10_RECORD_BYTES} bytes = ${RECORDS_PER_FILE} records); ` +
        'the file is truncated or not the binary version',
    );
  }
  return size / CIFAR10_RECORD_BYTES;
}

/** Reads the first `count` records of `path` into pixels/labels starting at item `at`. */
async function readRecords(
  path: string,
  count: number,
  pixels: Uint8Array,
  labels: Int32Array,
  at: number,
): Promise<void> {
  const bytes = Buffer.alloc(count * CIFAR10_RECORD_BYTES);
  const fh = await open(path, 'r');
  try {
    const { bytesRead } = await fh.read(bytes, 0, bytes.length, 0);
    if (bytesRead !== bytes.length) throw new InputFileError(path, `short read (${bytesRead} of ${bytes.length} bytes)`);
  } finally {
    await fh.close();
  }
  for (let r = 0; r < count; r++) {
    const rec = r * CIFAR10_RECORD_BYTES;
    const label = bytes[rec]!;
    if (label > 9) throw new InputFileError(path, `record ${r}: label byte ${label} is not a class index 0–9`);
    labels[at + r] = label;
    // Planes (CHW) → interleaved pixels (HWC).
    const out = (at + r) * 3 * PLANE;
    for (let p = 0; p < PLANE; p++) {
      pixels[out + p * 3] = bytes[rec + 1 + p]!;
      pixels[out + p * 3 + 1] = bytes[rec + 1 + PLANE + p]!;
      pixels[out + p * 3 + 2] = bytes[rec + 1 + 2 * PLANE + p]!;
    }
  }
}

/** Reads up to `limit` records from the files in order, touching only what is needed. */
async function readSplit(
  paths: readonly string[],
  counts: readonly number[],
  limit: number | undefined,
  classNames: readonly string[],
): Promise<ArrayImageDataset> {
  const available = counts.reduce((a, b) => a + b, 0);
  const total = Math.min(available, limit ?? available);
  const pixels = new Uint8Array(total * 3 * PLANE);
  const labels = new Int32Array(total);
  let at = 0;
  for (let f = 0; f < paths.length && at < total; f++) {
    const take = Math.min(counts[f]!, total - at);
    await readRecords(paths[f]!, take, pixels, labels, at);
    at += take;
  }
  return new ArrayImageDataset(pixels, CIFAR10_SIDE, CIFAR10_SIDE, labels, classNames);
}

/** Class names from batches.meta.txt (one per line), or the standard names if the file is absent. */
async function readClassNames(folder: string): Promise<readonly string[]> {
  const path = join(folder, META_FILE);
  if (!existsSync(path)) return CIFAR10_CLASS_NAMES;
  const names = (await readFile(path, 'utf8'))
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length !== CIFAR10_CLASS_NAMES.length) {
    throw new InputFileError(path, `expected ${CIFAR10_CLASS_NAMES.length} class names, one per line, found ${names.length}`);
  }
  return names;
}

/** Loads CIFAR-10 (binary version) from `root`. */
export async function readCifar10(root: string, opts: Cifar10Options = {}): Promise<Cifar10Splits> {
  const folder = resolveCifar10Folder(root);
  const trainPaths = CIFAR10_TRAIN_FILES.map((f) => join(folder, f));
  const testPath = join(folder, CIFAR10_TEST_FILE);
  checkPresent(folder, [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE]);
  const counts: number[] = [];
  for (const path of [...trainPaths, testPath]) counts.push(await recordCount(path));
  const classNames = await readClassNames(folder);
  const train = await readSplit(trainPaths, counts.slice(0, trainPaths.length), opts.trainLimit, classNames);
  const test = await readSplit([testPath], counts.slice(trainPaths.length), opts.testLimit, classNames);
  return { train, test, folder };
}
