import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import { BadItems, BadItemsError } from '../../src/data/bad_items.js';
import type { NeighbourIndex } from '../../src/data/dataset.js';
import { loadDataSplits } from '../../src/data/index.js';
import { compilePattern, loadPatches, resolvePatchLayout } from '../../src/data/patches.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/rng.js';
import { noisyImage, scratchDir, writeImage, writeSimTripletRelease } from './fixtures.js';

const P = 8; // patch side in the fixtures

/** A flat patch whose colour encodes its slide and cell, so loaded pixels can be traced to their file. */
function patchPixels(slide: number, x: number, y: number): Uint8Array {
  const colour = [20 + 60 * slide, 20 + 20 * x, 20 + 20 * y];
  return Uint8Array.from({ length: P * P * 3 }, (_, i) => colour[i % 3]!);
}

/**
 * Two slides on a 5x4 grid with holes: slide 'A' misses (2, 1), slide 'B_x' (an underscore in the
 * name) holds a 2x2 block plus two lone patches with no neighbour, at (4, 0) and (0, 3).
 */
const CELLS: Record<string, [number, number][]> = {
  A: [...Array(20).keys()].map((k) => [k % 5, Math.floor(k / 5)] as [number, number]).filter(([x, y]) => !(x === 2 && y === 1)),
  B_x: [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
    [4, 0],
    [0, 3],
  ],
};

async function writeGrid(dir: string, name: (slide: string, x: number, y: number) => string, format: 'png' | 'jpeg' | 'tiff' = 'png') {
  const slides = Object.keys(CELLS);
  for (const [s, slide] of slides.entries()) {
    for (const [x, y] of CELLS[slide]!) await writeImage(join(dir, name(slide, x, y)), patchPixels(s, x, y), P, P, format);
  }
}

/** Parses the default-pattern, pixel-unit file name back into (slide, cell). */
function cellOf(path: string): { slide: string; x: number; y: number } {
  const m = /^(.+)_(\d+)_(\d+)\.\w+$/.exec(basename(path))!;
  return { slide: m[1]!, x: Number(m[2]) / P, y: Number(m[3]) / P };
}

function patchesConfig(root: string, extra: Record<string, unknown> = {}) {
  return DataSchema.parse({ kind: 'patches', root, image_size: P, cache_dir: join(root, '..', 'cache'), ...extra });
}

function context(root: string) {
  const bad = new BadItems();
  return { bad, ctx: { size: P, cacheDir: join(root, '..', 'cache'), bad, log: () => {} } };
}

describe('compilePattern', () => {
  it('reads slide and position with the default pattern, slide names may contain the separator', () => {
    const parse = compilePattern('<slide>_<x>_<y>.<ext>');
    expect(parse('TCGA-A1_part2_512_1024.png')).toEqual({ slide: 'TCGA-A1_part2', x: 512, y: 1024 });
    expect(parse('s_0_0.tiff')).toEqual({ slide: 's', x: 0, y: 0 });
    expect(parse('s_0.png')).toBeUndefined();
    expect(parse('s_a_0.png')).toBeUndefined();
  });

  it('takes custom patterns with literal text and no slide', () => {
    const parse = compilePattern('tile[<y>,<x>] of <slide>.png');
    expect(parse('tile[3,7] of s1.png')).toEqual({ slide: 's1', x: 7, y: 3 });
    expect(parse('tile(3,7) of s1.png')).toBeUndefined();
    expect(compilePattern('r<y>c<x>.<ext>')('r2c10.jpg')).toEqual({ x: 10, y: 2 });
  });

  it('rejects unknown, repeated and missing placeholders', () => {
    expect(() => compilePattern('<slide>_<col>_<y>.png')).toThrow(/unknown placeholder <col>/);
    expect(() => compilePattern('<x>_<x>_<y>')).toThrow(/<x> appears twice/);
    expect(() => compilePattern('<slide>_<x>.png')).toThrow(UserError);
    expect(() => compilePattern('<slide>_<x>.png')).toThrow(/has no <y>/);
  });
});

/** Asserts every sampled neighbour is on an adjacent cell of the same slide. */
function expectAdjacent(neighbours: NeighbourIndex, sources: readonly string[], trainSize: number, epochs: number) {
  const drawn = new Map<number, Set<number>>();
  for (let e = 0; e < epochs; e++) {
    for (let i = 0; i < trainSize; i++) {
      const j = neighbours.sample(i, 3, e);
      const a = cellOf(sources[i]!);
      const b = cellOf(sources[j]!);
      if (neighbours.count(i) === 0) {
        expect(j).toBe(i);
        continue;
      }
      expect(b.slide).toBe(a.slide);
      expect(Math.max(Math.abs(a.x - b.x), Math.abs(a.y - b.y))).toBe(1);
      drawn.set(i, (drawn.get(i) ?? new Set()).add(j));
    }
  }
  return drawn;
}

describe('patches (file names)', () => {
  it('finds the grid from pixel offsets, samples only adjacent same-slide neighbours, and counts isolated ones', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => join(s === 'A' ? 'part1' : 'part2/deeper', `${s}_${x * P}_${y * P}.png`));
    const lines: string[] = [];
    const splits = await loadDataSplits(patchesConfig(root), 0, { log: (l) => lines.push(l) });
    const n = CELLS.A!.length + CELLS.B_x!.length;
    expect(splits.train.size).toBe(n);
    expect([...splits.train.labels].every((l) => l === -1)).toBe(true);
    expect(splits.train.groupNames).toEqual(['A', 'B_x']);
    expect(splits.test.size).toBe(0);
    expect(splits.probeTrain).toBeUndefined();
    const nb = splits.neighbours!;
    expect(nb.images).toBe(splits.train);
    expect(nb.isolated).toBe(2);
    expect(lines.some((l) => /2 patch\(es\) have no neighbour/.test(l))).toBe(true);
    expect(splits.description).toMatch(/^patches 8x8 \(25 train on 2 slides, names layout, 2 without neighbour \/ 0 test\)$/);

    const sources = splits.train.sources!;
    // Exact counts: a corner of slide A has 3 neighbours, (1, 1) next to the hole has 7, (2, 0) has 4.
    const at = (slide: string, x: number, y: number) => sources.findIndex((p) => { const c = cellOf(p); return c.slide === slide && c.x === x && c.y === y; });
    expect(nb.count(at('A', 0, 0))).toBe(3);
    expect(nb.count(at('A', 1, 1))).toBe(7);
    expect(nb.count(at('A', 2, 0))).toBe(4);
    expect(nb.count(at('B_x', 1, 1))).toBe(3);
    expect(nb.count(at('B_x', 4, 0))).toBe(0);
    // Pixels come from the named file.
    const i = at('A', 3, 2);
    expect([...splits.train.image(i).subarray(0, 3)]).toEqual([20, 80, 60]);

    const drawn = expectAdjacent(nb, sources, splits.train.size, 100);
    // Over 100 epochs every existing neighbour of (1, 1) on slide A gets drawn ...
    expect(drawn.get(at('A', 1, 1))!.size).toBe(7);
    // ... about equally often (700 epochs: 100 expected each).
    const tally = new Map<number, number>();
    for (let e = 0; e < 700; e++) {
      const j = nb.sample(at('A', 1, 1), 9, e);
      tally.set(j, (tally.get(j) ?? 0) + 1);
    }
    expect(tally.size).toBe(7);
    for (const c of tally.values()) {
      expect(c).toBeGreaterThan(60);
      expect(c).toBeLessThan(140);
    }
    // Seeded: the same (seed, epoch, item) gives the same neighbour.
    for (let k = 0; k < n; k++) expect(nb.sample(k, 3, 7)).toBe(nb.sample(k, 3, 7));
  });

  it('reads grid units and a custom pattern, and JPEG and TIFF patches', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => `${s}-r${y}c${x}.${s === 'A' ? 'jpg' : 'tif'}`, 'jpeg');
    const cfg = patchesConfig(root, { patches: { pattern: '<slide>-r<y>c<x>.<ext>', units: 'grid' } });
    const splits = await loadDataSplits(cfg, 0);
    expect(splits.train.size).toBe(25);
    expect(splits.neighbours!.isolated).toBe(2);
  });

  it('reports names off the pattern, off the stride grid and duplicate cells', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => `${s}_${x * P}_${y * P}.png`);
    const rng = new Rng(5);
    await writeImage(join(root, 'notes_about_A.png'), noisyImage(P, P, [0, 0, 0], rng), P, P);
    await writeImage(join(root, 'A_3_0.png'), noisyImage(P, P, [0, 0, 0], rng), P, P);
    await writeImage(join(root, 'again', 'A_0_0.png'), noisyImage(P, P, [0, 0, 0], rng), P, P);
    writeFileSync(join(root, 'readme.txt'), 'not an image: ignored');
    const err = (await loadDataSplits(patchesConfig(root), 0).catch((e: unknown) => e)) as BadItemsError;
    expect(err).toBeInstanceOf(BadItemsError);
    expect(err.items.map((i) => [i.kind, basename(i.path)])).toEqual([
      ['name not matching the pattern', 'notes_about_A.png'],
      ['position off the patch grid', 'A_3_0.png'],
      ['duplicate grid position', 'A_0_0.png'],
    ]);
    // The later path (in sorted order) is the duplicate.
    expect(err.items[2]!.path).toBe(join(root, 'again', 'A_0_0.png'));
    const lines: string[] = [];
    const skipped = await loadDataSplits(patchesConfig(root, { on_bad_image: 'skip' }), 0, { log: (l) => lines.push(l) });
    expect(skipped.train.size).toBe(25);
    expect(lines.some((l) => /skipped 3 unusable input\(s\): 1 name not matching the pattern \(e\.g\. .*notes_about_A\.png/.test(l))).toBe(true);
    // An explicit stride of 1 pixel puts A_3_0 on the grid (and makes no other cell adjacent to it).
    const { bad, ctx } = context(root);
    const strided = await loadPatches(root, patchesConfig(root, { patches: { stride: 1 } }).patches, ctx);
    expect(bad.items.map((i) => i.kind)).toEqual(['name not matching the pattern', 'duplicate grid position']);
    expect(strided.train.size).toBe(26);
  });

  it('drops undecodable patches and their neighbour links', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => `${s}_${x * P}_${y * P}.png`);
    writeFileSync(join(root, 'A_8_8.png'), 'corrupt');
    const lines: string[] = [];
    const splits = await loadDataSplits(patchesConfig(root, { on_bad_image: 'skip' }), 0, { log: (l) => lines.push(l) });
    expect(splits.train.size).toBe(24);
    expect(splits.train.sources).not.toContain(join(root, 'A_8_8.png'));
    expectAdjacent(splits.neighbours!, splits.train.sources!, 24, 5);
    // (0, 0) of slide A lost its diagonal neighbour (1, 1).
    expect(splits.neighbours!.count(0)).toBe(2);
    expect(lines.some((l) => /1 unreadable image \(e\.g\. .*A_8_8\.png: cannot read image/.test(l))).toBe(true);
  });

  it('takes the default stride from the widest of the first patches, not a narrow edge patch', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => `${s}_${x * P}_${y * P}.png`);
    // The first file in sorted order becomes a narrower patch cut at the slide's edge.
    await writeImage(join(root, 'A_0_0.png'), noisyImage(5, P, [9, 9, 9], new Rng(1)), 5, P);
    const splits = await loadDataSplits(patchesConfig(root), 0);
    expect(splits.train.size).toBe(25);
    expect(splits.neighbours!.count(0)).toBe(3);
  });

  it('data.limit keeps the first patches by slide, row and column', async () => {
    const root = join(scratchDir(), 'patches');
    await writeGrid(root, (s, x, y) => `${s}_${x * P}_${y * P}.png`);
    const splits = await loadDataSplits(patchesConfig(root, { limit: 6 }), 0);
    expect(splits.train.sources!.map((p) => basename(p))).toEqual(['A_0_0.png', 'A_8_0.png', 'A_16_0.png', 'A_24_0.png', 'A_32_0.png', 'A_0_8.png']);
    expect(splits.neighbours!.count(0)).toBe(2);
  });
});

describe('patches (released SimTriplet layout)', () => {
  it('is auto-detected; anchors train, neighbours come from the _<k> files of the same anchor', async () => {
    const root = await writeSimTripletRelease(P);
    expect(resolvePatchLayout(root, 'auto')).toBe('simtriplet');
    expect(resolvePatchLayout(root, 'names')).toBe('names');
    const splits = await loadDataSplits(patchesConfig(root), 0);
    const train = splits.train;
    expect(train.size).toBe(6);
    expect(train.sources!.every((p) => p.includes(`${join(root, 'original')}/`))).toBe(true);
    const nb = splits.neighbours!;
    expect(nb.images.size).toBe(6 + 10);
    expect(nb.isolated).toBe(2);
    // The first train.size pool items are the train items.
    for (let i = 0; i < train.size; i++) expect(Buffer.from(nb.images.image(i)).equals(Buffer.from(train.image(i)))).toBe(true);
    const poolSources = (nb.images as typeof train).sources!;
    for (let i = 0; i < train.size; i++) {
      const anchor = basename(train.sources![i]!, '.png');
      const slide = basename(join(train.sources![i]!, '..'));
      const seen = new Set<string>();
      for (let e = 0; e < 30; e++) {
        const j = nb.sample(i, 1, e);
        if (nb.count(i) === 0) {
          expect(j).toBe(i);
          continue;
        }
        const file = poolSources[j]!;
        expect(file).toMatch(new RegExp(`/original_nearby_8wan/${slide}/${anchor}_\\d\\.png$`));
        seen.add(file);
      }
      expect(seen.size).toBe(nb.count(i));
    }
    expect(splits.description).toContain('simtriplet layout');
  });
});
