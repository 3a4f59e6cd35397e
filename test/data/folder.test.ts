import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { holdoutSplit, scanLabelledFolder } from '../../src/data/folder.js';
import { loadDataSplits } from '../../src/data/index.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { noisyImage, scratchDir, writeImage } from './fixtures.js';

/** <root>/<group>/<class>/<n>.png with the counts given; class c's images are colour-coded. */
async function writeGrouped(root: string, counts: Record<string, Record<string, number>>): Promise<void> {
  const rng = new Rng(4);
  for (const [group, classes] of Object.entries(counts)) {
    for (const [cls, n] of Object.entries(classes)) {
      for (let i = 0; i < n; i++) await writeImage(join(root, group, cls, `${i}.png`), noisyImage(6, 6, [cls.length * 40, 100, 50], rng), 6, 6);
    }
  }
}

const folderConfig = (root: string, labelled: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  DataSchema.parse({ kind: 'folder', root, image_size: 8, cache_dir: join(root, '..', 'cache'), labelled, ...extra });

describe('folder (labelled)', () => {
  const grouped = { s1: { tumour: 3, stroma: 2 }, s3: { tumour: 2, fat: 1 }, s2: { stroma: 4, tumour: 1 } };

  it('detects <group>/<class>, holds out the last group and keeps the others as groups for LOGO', async () => {
    const root = join(scratchDir(), 'labelled');
    await writeGrouped(root, grouped);
    const splits = await loadDataSplits(folderConfig(root), 0);
    const { probeTrain, test, train } = splits;
    expect(train).toBe(probeTrain);
    expect(probeTrain!.classNames).toEqual(['fat', 'stroma', 'tumour']);
    expect(probeTrain!.groupNames).toEqual(['s1', 's2']);
    expect(probeTrain!.size).toBe(10);
    expect(test.size).toBe(3);
    expect(test.groupNames).toEqual(['s3']);
    expect([...test.groups!]).toEqual([0, 0, 0]);
    // Each item's group and label agree with its path.
    for (const ds of [probeTrain!, test]) {
      ds.sources!.forEach((p, i) => {
        const [cls, group] = p.split('/').reverse().slice(1, 3);
        expect(ds.groupNames![ds.groups![i]!]).toBe(group);
        expect(ds.classNames[ds.labels[i]!]).toBe(cls);
      });
    }
    expect(splits.description).toBe('folder 8x8 (10 train / 3 test, grouped, held-out group s3)');
  });

  it('holds out the named group, and rejects an unknown one or a single group', async () => {
    const root = join(scratchDir(), 'labelled');
    await writeGrouped(root, grouped);
    const s = await loadDataSplits(folderConfig(root, { holdout_group: 's1' }), 0);
    expect(s.test.size).toBe(5);
    expect(s.probeTrain!.groupNames).toEqual(['s2', 's3']);
    const err = await loadDataSplits(folderConfig(root, { holdout_group: 's9' }), 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe("data.labelled.holdout_group: 's9' is not one of the groups (s1, s2, s3)");
    const one = join(scratchDir(), 'labelled');
    await writeGrouped(one, { only: { a: 2, b: 2 } });
    await expect(loadDataSplits(folderConfig(one), 0)).rejects.toThrow(/at least 2 groups, found 1 \(only\)/);
  });

  it('splits a flat <class>/* folder stratified by class, seeded', async () => {
    const flat = join(scratchDir(), 'flat');
    const rng = new Rng(1);
    for (const [cls, n] of [['cat', 20], ['dog', 10]] as const) {
      for (let i = 0; i < n; i++) await writeImage(join(flat, cls, `${i}.png`), noisyImage(6, 6, [90, 90, 90], rng), 6, 6);
    }
    const scan = await scanLabelledFolder(flat, 'auto');
    expect(scan.layout).toBe('flat');
    const s = await loadDataSplits(folderConfig(flat, { test_fraction: 0.3 }), 0);
    expect(s.probeTrain!.groups).toBeUndefined();
    const count = (labels: Int32Array, c: number) => [...labels].filter((l) => l === c).length;
    expect([count(s.test.labels, 0), count(s.test.labels, 1)]).toEqual([6, 3]);
    expect(s.probeTrain!.size).toBe(21);
    const again = await loadDataSplits(folderConfig(flat, { test_fraction: 0.3 }), 0);
    expect(again.test.sources).toEqual(s.test.sources);
    const other = await loadDataSplits(folderConfig(flat, { test_fraction: 0.3 }), 1);
    expect(new Set(other.test.sources)).not.toEqual(new Set(s.test.sources));
    expect(s.description).toBe('folder 8x8 (21 train / 9 test, flat)');
  });

  it('asks for the layout when folders mix images and sub-folders', async () => {
    const root = join(scratchDir(), 'mixed');
    await writeGrouped(root, { g1: { a: 1 } });
    await writeImage(join(root, 'b', '0.png'), noisyImage(6, 6, [0, 0, 0], new Rng(0)), 6, 6);
    await expect(scanLabelledFolder(root, 'auto')).rejects.toThrow(/set data.labelled.layout/);
    expect((await scanLabelledFolder(root, 'flat')).entries).toHaveLength(1);
    mkdirSync(join(root, 'empty'));
    expect((await scanLabelledFolder(root, 'grouped')).classNames).toEqual(['a']);
  });
});

describe('holdoutSplit', () => {
  it('orders items in a seeded shuffle so a limit keeps a mix of groups', () => {
    const groups = Int32Array.from({ length: 60 }, (_, i) => Math.floor(i / 20));
    const labels = new Int32Array(60);
    const split = holdoutSplit(labels, groups, ['a', 'b', 'c'], { test_fraction: 0.2 }, 3);
    expect(split.holdout).toBe('c');
    expect([...split.test].sort((a, b) => a - b)).toEqual([...Array(20).keys()].map((i) => i + 40));
    const firstTen = new Set([...split.train.subarray(0, 10)].map((i) => groups[i]));
    expect(firstTen).toEqual(new Set([0, 1]));
  });
});
