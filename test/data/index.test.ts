import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { CIFAR10_RECORD_BYTES, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES } from '../../src/data/cifar10.js';
import { epochBatches, loadDataSplits } from '../../src/data/index.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { UserError } from '../../src/util/errors.js';

describe('loadDataSplits', () => {
  it('builds synthetic splits from the config and seed, applying limit and test_limit', async () => {
    const cfg = DataSchema.parse({ synthetic: { train_size: 50, test_size: 30, size: 16 }, limit: 20 });
    const splits = await loadDataSplits(cfg, 4);
    expect([splits.train.size, splits.test.size, splits.train.height]).toEqual([20, 20, 16]);
    expect(splits.description).toContain('synthetic');
    expect(splits.description).toContain('20 train / 20 test');
    const reference = makeSynthetic({ size: 16, count: 20, seed: 4, split: 'train' });
    expect(Buffer.from(splits.train.image(19)).equals(Buffer.from(reference.image(19)))).toBe(true);

    const own = await loadDataSplits(DataSchema.parse({ ...cfg, test_limit: 25 }), 4);
    expect([own.train.size, own.test.size]).toEqual([20, 25]);
    const unlimited = await loadDataSplits(DataSchema.parse({ synthetic: { train_size: 50, test_size: 30, size: 16 } }), 4);
    expect([unlimited.train.size, unlimited.test.size]).toEqual([50, 30]);
  });

  it('requires data.root for cifar10', async () => {
    const err = await loadDataSplits(DataSchema.parse({ kind: 'cifar10' }), 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe("data.root: required for data.kind 'cifar10' (the cifar-10-batches-bin folder)");
  });

  it('a configured folder that does not exist is named by its key as well as its path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'simtrip-index-'));
    try {
      const missing = join(dir, 'labelled');
      const patches = DataSchema.parse({ kind: 'patches', root: dir, labelled: { root: missing } });
      await expect(loadDataSplits(patches, 0)).rejects.toThrow(new UserError(`data.labelled.root: ${missing}: no such directory (expected the labelled folder for the probes, <root>/<group>/<class>/* or <root>/<class>/*)`));
      const folder = DataSchema.parse({ kind: 'folder', root: join(dir, 'nope') });
      await expect(loadDataSplits(folder, 0)).rejects.toThrow(/^data\.root: .*nope: no such directory \(expected the labelled folder/);
      writeFileSync(join(dir, 'file'), '');
      await expect(loadDataSplits(DataSchema.parse({ kind: 'ham10000', root: join(dir, 'file') }), 0)).rejects.toThrow(/^data\.root: .*file: not a directory/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('requires data.root for the file-based medical kinds', async () => {
    for (const [kind, what] of [
      ['ham10000', /data\.root: required for data\.kind 'ham10000' \(the folder with HAM10000_metadata\.csv and the images\)/],
      ['patches', /data\.root: required for data\.kind 'patches' \(the patch folder\)/],
      ['folder', /data\.root: required for data\.kind 'folder' \(the labelled folder/],
    ] as const) {
      const err = await loadDataSplits(DataSchema.parse({ kind }), 0).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(what);
    }
  });

  it('reads cifar10 with limits', async () => {
    const root = mkdtempSync(join(tmpdir(), 'simtrip-cifar-idx-'));
    try {
      for (const name of [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE]) {
        writeFileSync(join(root, name), Buffer.alloc(4 * CIFAR10_RECORD_BYTES));
      }
      const splits = await loadDataSplits(DataSchema.parse({ kind: 'cifar10', root, limit: 6, test_limit: 3 }), 0);
      expect([splits.train.size, splits.test.size]).toEqual([6, 3]);
      expect(splits.description).toMatch(/^cifar10 32x32 \(6 train \/ 3 test/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('epochBatches', () => {
  it('yields full batches of distinct indices, dropping the remainder', () => {
    const batches = epochBatches(103, 10, 1, 0);
    expect(batches).toHaveLength(10);
    const seen = new Set<number>();
    for (const b of batches) {
      expect(b.length).toBe(10);
      for (const i of b) {
        expect(i).toBeGreaterThanOrEqual(0);
        expect(i).toBeLessThan(103);
        seen.add(i);
      }
    }
    expect(seen.size).toBe(100);
  });

  it('is deterministic per (seed, epoch) and reshuffles across epochs and seeds', () => {
    const flat = (seed: number, epoch: number) => epochBatches(64, 8, seed, epoch).flatMap((b) => [...b]);
    expect(flat(3, 5)).toEqual(flat(3, 5));
    expect(flat(3, 6)).not.toEqual(flat(3, 5));
    expect(flat(4, 5)).not.toEqual(flat(3, 5));
    // A real shuffle, not the identity order.
    expect(flat(3, 5)).not.toEqual([...Array(64).keys()]);
  });

  it('explains a batch size larger than the data', () => {
    expect(() => epochBatches(5, 8, 0, 0)).toThrow(UserError);
    expect(() => epochBatches(5, 8, 0, 0)).toThrow(/train\.batch_size \(8\).*\(5 items\)/);
    expect(epochBatches(8, 8, 0, 0)).toHaveLength(1);
  });
});
