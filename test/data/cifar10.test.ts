import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CIFAR10_CLASS_NAMES,
  CIFAR10_RECORD_BYTES,
  CIFAR10_TEST_FILE,
  CIFAR10_TRAIN_FILES,
  readCifar10,
} from '../../src/data/cifar10.js';
import { InputFileError } from '../../src/util/errors.js';

const PLANE = 1024;
/** Distinct byte for every (file, record, channel, pixel) so misplaced bytes are caught. */
const pixelValue = (file: number, rec: number, c: number, p: number) => (file * 53 + rec * 29 + c * 85 + p * 7) & 255;
const labelOf = (file: number, rec: number) => (file * 3 + rec) % 10;

function batchFile(file: number, records: number): Buffer {
  const buf = Buffer.alloc(records * CIFAR10_RECORD_BYTES);
  for (let r = 0; r < records; r++) {
    const base = r * CIFAR10_RECORD_BYTES;
    buf[base] = labelOf(file, r);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < PLANE; p++) buf[base + 1 + c * PLANE + p] = pixelValue(file, r, c, p);
    }
  }
  return buf;
}

// Train files 0..4 hold 7 records each except the last two (3 and 2); the test file (index 5) holds 5.
const TRAIN_COUNTS = [7, 7, 7, 3, 2];
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'simtrip-cifar-'));
  CIFAR10_TRAIN_FILES.forEach((name, f) => writeFileSync(join(root, name), batchFile(f, TRAIN_COUNTS[f]!)));
  writeFileSync(join(root, CIFAR10_TEST_FILE), batchFile(5, 5));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** The (file, record) each train item comes from, in reading order. */
function trainOrigins(): Array<[number, number]> {
  return TRAIN_COUNTS.flatMap((n, f) => Array.from({ length: n }, (_, r): [number, number] => [f, r]));
}

describe('readCifar10', () => {
  it('reads labels and converts CHW planes to HWC exactly', async () => {
    const { train, test } = await readCifar10(root);
    expect(train.size).toBe(26);
    expect(test.size).toBe(5);
    expect([train.height, train.width]).toEqual([32, 32]);
    trainOrigins().forEach(([f, r], i) => {
      expect(train.labels[i]).toBe(labelOf(f, r));
      const img = train.image(i);
      for (const [y, x] of [[0, 0], [0, 31], [5, 17], [31, 0], [31, 31]] as const) {
        const p = y * 32 + x;
        for (let c = 0; c < 3; c++) expect(img[p * 3 + c]).toBe(pixelValue(f, r, c, p));
      }
    });
    const img = test.image(4);
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) if (img[p * 3 + c] !== pixelValue(5, 4, c, p)) throw new Error(`test pixel ${p}/${c}`);
    }
  });

  it('uses the standard class names without batches.meta.txt and the file names when present', async () => {
    expect((await readCifar10(root)).train.classNames).toEqual(CIFAR10_CLASS_NAMES);
    const names = ['a0', 'b1', 'c2', 'd3', 'e4', 'f5', 'g6', 'h7', 'i8', 'j9'];
    writeFileSync(join(root, 'batches.meta.txt'), names.join('\n') + '\n\n');
    const { train, test } = await readCifar10(root);
    expect(train.classNames).toEqual(names);
    expect(test.classNames).toEqual(names);
  });

  it('reads only the first records under a limit, across file boundaries', async () => {
    const { train, test } = await readCifar10(root, { trainLimit: 9, testLimit: 2 });
    expect(train.size).toBe(9);
    expect(test.size).toBe(2);
    // Item 8 is record 1 of the second file.
    expect(train.labels[8]).toBe(labelOf(1, 1));
    expect(train.image(8)[3 * 100 + 2]).toBe(pixelValue(1, 1, 2, 100));
    expect(test.labels[1]).toBe(labelOf(5, 1));
  });

  it('accepts the parent folder of cifar-10-batches-bin', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'simtrip-cifar-parent-'));
    try {
      const nested = join(parent, 'cifar-10-batches-bin');
      mkdirSync(nested);
      CIFAR10_TRAIN_FILES.forEach((name, f) => writeFileSync(join(nested, name), batchFile(f, 1)));
      writeFileSync(join(nested, CIFAR10_TEST_FILE), batchFile(5, 1));
      const { train, folder } = await readCifar10(parent);
      expect(folder).toBe(nested);
      expect(train.size).toBe(5);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('names a file whose size is not a whole number of records, with its size', async () => {
    const path = join(root, CIFAR10_TRAIN_FILES[2]!);
    truncateSync(path, 7 * CIFAR10_RECORD_BYTES - 10);
    const err = await readCifar10(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFileError);
    expect((err as InputFileError).path).toBe(path);
    expect((err as Error).message).toContain(`size ${7 * CIFAR10_RECORD_BYTES - 10} bytes`);
    expect((err as Error).message).toContain('3073');
  });

  it('lists every missing file', async () => {
    rmSync(join(root, CIFAR10_TRAIN_FILES[3]!));
    rmSync(join(root, CIFAR10_TEST_FILE));
    const err = await readCifar10(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFileError);
    expect((err as Error).message).toMatch(/missing data_batch_4\.bin, test_batch\.bin/);
  });

  it('rejects a missing root folder', async () => {
    const missing = join(root, 'nope');
    await expect(readCifar10(missing)).rejects.toThrow(/nope: folder not found .*data_batch_1\.bin/);
  });

  it('rejects a label byte above 9 with the record index', async () => {
    const buf = batchFile(5, 5);
    buf[3 * CIFAR10_RECORD_BYTES] = 10;
    writeFileSync(join(root, CIFAR10_TEST_FILE), buf);
    await expect(readCifar10(root)).rejects.toThrow(/test_batch\.bin: record 3: label byte 10/);
  });
});
