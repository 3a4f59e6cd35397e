import { readFileSync, writeFileSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { BadItemsError } from '../../src/data/bad_items.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { HAM10000_CLASS_NAMES, type HamSplitFile } from '../../src/data/ham10000.js';
import { loadDataSplits } from '../../src/data/index.js';
import { InputFileError } from '../../src/util/errors.js';
import { dxColour, scratchDir, writeHamFixture, type HamFixture } from './fixtures.js';

const idOf = (path: string) => basename(path, extname(path));
const ids = (ds: ImageDataset) => ds.sources!.map(idOf);

function hamConfig(fx: HamFixture, extra: Record<string, unknown> = {}) {
  return DataSchema.parse({ kind: 'ham10000', root: fx.root, image_size: 8, cache_dir: join(fx.root, '.cache'), ...extra });
}

describe('ham10000', () => {
  // One clean fixture for the tests that only read it (writing ~150 JPEGs is the slow part).
  let sharedFixture: Promise<HamFixture> | undefined;
  const shared = () => (sharedFixture ??= writeHamFixture());

  it('splits by lesion and dx, labels from the CSV, and stores the split in the run dir', async () => {
    const fx = await shared();
    const runDir = scratchDir();
    const splits = await loadDataSplits(hamConfig(fx), 5, { runDir });
    const sides = { train: splits.train, val: splits.val!, test: splits.test };
    expect(splits.train.classNames).toEqual(HAM10000_CLASS_NAMES);
    expect(Object.values(sides).reduce((a, d) => a + d.size, 0)).toBe(fx.rows.length);
    expect(splits.description).toMatch(/^ham10000 8x8 \(\d+ train \/ \d+ val \/ \d+ test; split drawn \(seed 5\)\)$/);
    // HAM items carry no groups: lesions are a split constraint, not a leave-one-group-out unit.
    expect(splits.train.groups).toBeUndefined();

    const lesionSides = new Map<string, Set<string>>();
    for (const [side, ds] of Object.entries(sides)) {
      for (const [i, id] of ids(ds).entries()) {
        const lesion = fx.lesionOf.get(id)!;
        lesionSides.set(lesion, (lesionSides.get(lesion) ?? new Set()).add(side));
        // Label from the CSV, and the pixels are that dx's colour (the image matches its row).
        expect(HAM10000_CLASS_NAMES[ds.labels[i]!]).toBe(fx.dxOf.get(id));
        const px = ds.image(i);
        const want = dxColour(ds.labels[i]!);
        for (let c = 0; c < 3; c++) expect(Math.abs(px[c]! - want[c]!)).toBeLessThan(25);
      }
    }
    expect([...lesionSides.values()].filter((s) => s.size > 1)).toEqual([]);
    // Items within a side are ordered by image_id.
    expect(ids(splits.train)).toEqual([...ids(splits.train)].sort());

    const stored = JSON.parse(readFileSync(join(runDir, 'split.json'), 'utf8')) as HamSplitFile;
    expect(stored).toMatchObject({ format: 'simtrip-split', dataset: 'ham10000', seed: 5, fractions: { train: 0.7, val: 0.15, test: 0.15 } });
    expect(Object.keys(stored.images)).toHaveLength(fx.rows.length);
    for (const [side, ds] of Object.entries(sides)) {
      expect(stored.counts[side as 'train'].images).toBe(ds.size);
      for (const id of ids(ds)) expect(stored.images[id]).toBe(side);
    }
    // Every class reaches every side in this fixture (4+ lesions per class).
    for (const side of ['train', 'val', 'test'] as const) {
      for (const dx of HAM10000_CLASS_NAMES) expect(stored.counts[side].dx[dx]).toBeGreaterThan(0);
    }
  });

  it('reuses a stored split exactly, whatever the seed, and draws differently with another seed', async () => {
    const fx = await shared();
    const runDir = scratchDir();
    const first = await loadDataSplits(hamConfig(fx), 1, { runDir });
    const splitFile = join(runDir, 'split.json');
    const reused = await loadDataSplits(hamConfig(fx, { split_file: splitFile }), 99);
    expect(ids(reused.train)).toEqual(ids(first.train));
    expect(ids(reused.val!)).toEqual(ids(first.val!));
    expect(ids(reused.test)).toEqual(ids(first.test));
    expect(reused.description).toContain(`split split file ${splitFile}`);
    expect(Buffer.from((reused.test as { pixels: Uint8Array } & ImageDataset).pixels).equals(Buffer.from((first.test as { pixels: Uint8Array } & ImageDataset).pixels))).toBe(true);
    const other = await loadDataSplits(hamConfig(fx), 2);
    expect(ids(other.test)).not.toEqual(ids(first.test));
  });

  it('rejects a split file with unknown ids, unassigned rows or a leaking lesion', async () => {
    const fx = await shared();
    const runDir = scratchDir();
    await loadDataSplits(hamConfig(fx), 1, { runDir });
    const stored = JSON.parse(readFileSync(join(runDir, 'split.json'), 'utf8')) as HamSplitFile;
    const write = (images: Record<string, string>) => {
      const path = join(scratchDir(), 'split.json');
      writeFileSync(path, JSON.stringify({ ...stored, images }));
      return path;
    };
    const expectError = async (path: string, reason: RegExp) => {
      const err = await loadDataSplits(hamConfig(fx, { split_file: path }), 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputFileError);
      expect((err as InputFileError).path).toBe(path);
      expect((err as InputFileError).reason).toMatch(reason);
    };
    await expectError(write({ ...stored.images, ISIC_0000000: 'train' }), /1 image id\(s\) not in HAM10000_metadata.csv, e.g. ISIC_0000000/);
    const [dropped, ...rest] = Object.keys(stored.images);
    await expectError(write(Object.fromEntries(rest.map((id) => [id, stored.images[id]!]))), new RegExp(`1 image\\(s\\) of HAM10000_metadata.csv have no side, e.g. ${dropped}`));
    await expectError(write({ ...stored.images, [rest[0]!]: 'holdout' }), /side other than train\/val\/test/);
    // Move one image of a multi-image lesion to another side.
    const lesion = [...fx.lesionOf].find(([id, l]) => [...fx.lesionOf].some(([o, m]) => m === l && o !== id))!;
    const moved = stored.images[lesion[0]] === 'train' ? 'test' : 'train';
    await expectError(write({ ...stored.images, [lesion[0]]: moved }), new RegExp(`1 lesion\\(s\\) have images on two sides, e.g. ${lesion[1]}`));
    await expectError(join(runDir, 'nope.json'), /split file not found/);
  });

  it("reports missing images, corrupt JPEGs and unknown dx with paths ('error'), or skips them ('skip')", async () => {
    const fx = await writeHamFixture({ broken: true });
    const err = (await loadDataSplits(hamConfig(fx), 1).catch((e: unknown) => e)) as BadItemsError;
    expect(err).toBeInstanceOf(BadItemsError);
    // Missing files and unknown dx are known before decoding, so 'error' fails with those first.
    expect(err.items.map((i) => i.kind).sort()).toEqual(['missing image', 'missing image', 'unknown dx']);
    expect(err.message).toMatch(/1 unknown dx \(e\.g\. .*HAM10000_metadata\.csv:\d+: ISIC_9999999 has dx 'melanoma\?'.*\); 2 missing image \(e\.g\. .*ISIC_\d+\.jpg/);
    expect(err.message).toContain('set data.on_bad_image: skip');
    for (const id of fx.missing) expect(err.message).toContain(`${id}.jpg`);

    const lines: string[] = [];
    const splits = await loadDataSplits(hamConfig(fx, { on_bad_image: 'skip' }), 1, { log: (l) => lines.push(l) });
    const loaded = [...ids(splits.train), ...ids(splits.val!), ...ids(splits.test)];
    expect(loaded).toHaveLength(fx.lesionOf.size - fx.missing.length - fx.corrupt.length);
    for (const id of [...fx.missing, ...fx.corrupt, ...fx.unknownDx]) expect(loaded).not.toContain(id);
    const report = lines.find((l) => l.includes('skipped'))!;
    expect(report).toMatch(/skipped 4 unusable input\(s\): 1 unknown dx .*; 2 missing image .*; 1 unreadable image \(e\.g\. .*ISIC_\d+\.jpg: cannot read image/);
    expect(report).toContain(`${fx.corrupt[0]}.jpg`);

    // With the listing clean, 'error' reports the corrupt JPEG found while decoding.
    const clean = await writeHamFixture({ lesionsPerClass: [1, 1, 1, 1, 1, 1, 1] });
    writeFileSync(join(clean.root, 'HAM10000_images_part_1', `${[...clean.lesionOf.keys()].find((id) => readable(clean, id))}.jpg`), 'garbage');
    const late = (await loadDataSplits(hamConfig(clean), 1).catch((e: unknown) => e)) as BadItemsError;
    expect(late).toBeInstanceOf(BadItemsError);
    expect(late.items.map((i) => i.kind)).toEqual(['unreadable image']);
  });

  it('applies data.limit before decoding and explains a missing metadata file', async () => {
    const fx = await shared();
    const lines: string[] = [];
    const splits = await loadDataSplits(hamConfig(fx, { limit: 5, test_limit: 3 }), 1, { log: (l) => lines.push(l) });
    expect([splits.train.size, splits.val!.size, splits.test.size]).toEqual([5, 3, 3]);
    // 5 of 7 classes at most: one line per side names every class the limit emptied, with its count.
    const train = lines.filter((l) => l.startsWith('data.limit 5: ham10000 train keeps no image of '));
    expect(train).toHaveLength(1);
    const emptied = [...train[0]!.matchAll(/(\w+) \((\d+) without the limit\)/g)].map((m) => m[1]);
    const present = new Set(Array.from(splits.train.labels, (l) => HAM10000_CLASS_NAMES[l]));
    expect(emptied.length).toBeGreaterThanOrEqual(2);
    for (const name of emptied) expect(present.has(name!)).toBe(false);
    expect(train[0]).toMatch(/; nothing is fitted or scored on those classes there; raise data\.limit or leave it out$/);
    expect(lines.filter((l) => l.startsWith('data.test_limit 3: ham10000 test keeps no image of '))).toHaveLength(1);
    lines.length = 0;
    await loadDataSplits(hamConfig(fx), 1, { log: (l) => lines.push(l) });
    expect(lines.filter((l) => / keeps no image of /.test(l))).toEqual([]);
    expect(splits.description).toContain(', limited;');
    const noVal = await loadDataSplits(hamConfig(fx, { split: { train: 0.8, val: 0, test: 0.2 } }), 1);
    expect(noVal.val).toBeUndefined();
    expect(noVal.train.size + noVal.test.size).toBe(fx.rows.length);
    const empty = scratchDir();
    const err = (await loadDataSplits(DataSchema.parse({ kind: 'ham10000', root: empty }), 1).catch((e: unknown) => e)) as InputFileError;
    expect(err).toBeInstanceOf(InputFileError);
    expect(err.path).toBe(join(empty, 'HAM10000_metadata.csv'));
    expect(err.reason).toMatch(/not found/);
  });
});

/** Whether the fixture wrote image `id` into part_1 (so overwriting that path hits a real file). */
function readable(fx: HamFixture, id: string): boolean {
  try {
    readFileSync(join(fx.root, 'HAM10000_images_part_1', `${id}.jpg`));
    return true;
  } catch {
    return false;
  }
}
