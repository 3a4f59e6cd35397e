import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { loadDataSplits } from '../../src/data/index.js';
import { makeSyntheticSlides, renderSlide, slideSpec, TISSUE_CLASS_NAMES, writeSyntheticSlides } from '../../src/data/synthetic_slides.js';
import { scratchDir } from './fixtures.js';

const small = (extra: Record<string, unknown> = {}) =>
  DataSchema.parse({ kind: 'synthetic_slides', slides: { train_slides: 2, eval_slides: 3, grid: 6, patch_size: 16, ...extra } }).slides;

const bytes = (ds: ImageDataset, i: number) => Buffer.from(ds.image(i));

describe('renderSlide', () => {
  it('is seeded, labels cells by the tissue at their centre, and shows every class', () => {
    const spec = slideSpec(small());
    const a = renderSlide(spec, 1, 'eval', 0);
    expect(Buffer.from(renderSlide(spec, 1, 'eval', 0).pixels).equals(Buffer.from(a.pixels))).toBe(true);
    expect(Buffer.from(renderSlide(spec, 2, 'eval', 0).pixels).equals(Buffer.from(a.pixels))).toBe(false);
    expect(Buffer.from(renderSlide(spec, 1, 'eval', 1).pixels).equals(Buffer.from(a.pixels))).toBe(false);
    expect(a.side).toBe(96);
    for (const c of a.cells) expect(c.label).toBe(a.classMap[(c.y * 16 + 8) * 96 + c.x * 16 + 8]);
    expect(new Set(a.classMap)).toEqual(new Set([0, 1, 2, 3]));
  });

  it('drops about gap_fraction of the cells', () => {
    const spec = slideSpec(small({ grid: 20, gap_fraction: 0.3 }));
    const kept = renderSlide(spec, 0, 'train', 0).cells.length;
    expect(kept / 400).toBeGreaterThan(0.62);
    expect(kept / 400).toBeLessThan(0.78);
    expect(renderSlide(slideSpec(small({ gap_fraction: 0 })), 0, 'train', 0).cells).toHaveLength(36);
  });
});

describe('makeSyntheticSlides', () => {
  // Many gaps, so that some patches are isolated.
  const cfg = small({ gap_fraction: 0.6 });
  const s = makeSyntheticSlides(cfg, 5);
  const slides = [0, 1].map((i) => renderSlide(slideSpec(cfg), 5, 'train', i));
  const positions = slides.flatMap((sl, k) => sl.cells.map((c) => ({ slide: k, ...c })));

  it('cuts the train slides into unlabelled patches, slide by slide, row-major', () => {
    expect(s.train.size).toBe(positions.length);
    expect([...s.train.labels].every((l) => l === -1)).toBe(true);
    expect(s.train.groupNames).toEqual(['train-slide-00', 'train-slide-01']);
    const i = positions.findIndex((p) => p.slide === 1);
    const p = positions[i]!;
    // Row 3 of the patch equals the slide's pixels at that place.
    const row = slides[1]!.pixels.subarray(((p.y * 16 + 3) * 96 + p.x * 16) * 3, ((p.y * 16 + 3) * 96 + p.x * 16 + 16) * 3);
    expect(Buffer.from(s.train.image(i).subarray(3 * 48, 4 * 48)).equals(Buffer.from(row))).toBe(true);
  });

  it('links each patch to its existing grid neighbours on the same slide', () => {
    let isolated = 0;
    positions.forEach((p, i) => {
      const expected = positions.filter((q) => q.slide === p.slide && Math.max(Math.abs(q.x - p.x), Math.abs(q.y - p.y)) === 1).length;
      expect(s.neighbours.count(i)).toBe(expected);
      if (expected === 0) isolated++;
      for (let e = 0; e < 12; e++) {
        const j = s.neighbours.sample(i, 0, e);
        const q = positions[j]!;
        if (expected === 0) expect(j).toBe(i);
        else expect([q.slide, Math.max(Math.abs(q.x - p.x), Math.abs(q.y - p.y))]).toEqual([p.slide, 1]);
      }
    });
    expect(isolated).toBeGreaterThan(0);
    expect(s.neighbours.isolated).toBe(isolated);
  });

  it('labels the eval slides by tissue, grouped by slide', () => {
    expect(s.labelled.classNames).toEqual(TISSUE_CLASS_NAMES.slice(0, 4));
    expect(s.labelled.groupNames).toEqual(['eval-slide-00', 'eval-slide-01', 'eval-slide-02']);
    expect(new Set(s.labelled.labels)).toEqual(new Set([0, 1, 2, 3]));
  });

  it('is learnable from texture but not from colour alone, across slides', () => {
    // Leave-one-slide-out nearest-centroid on standardised per-patch features.
    const big = makeSyntheticSlides(small({ eval_slides: 4, grid: 10, patch_size: 24, gap_fraction: 0 }), 3).labelled;
    const side = big.height;
    const features = (i: number, texture: boolean) => {
      const px = big.image(i);
      const n = side * side;
      const mean = [0, 0, 0];
      for (let k = 0; k < n; k++) for (let c = 0; c < 3; c++) mean[c]! += px[k * 3 + c]! / n;
      if (!texture) return mean;
      // Contrast, edge density and the share of dark (nucleus-like) pixels, on the green channel.
      let variance = 0;
      let gradient = 0;
      let dark = 0;
      for (let y = 0; y < side; y++) {
        for (let x = 0; x < side; x++) {
          const g = px[(y * side + x) * 3 + 1]!;
          variance += (g - mean[1]!) ** 2 / n;
          if (x + 1 < side) gradient += Math.abs(g - px[(y * side + x + 1) * 3 + 1]!) / n;
          if (g < mean[1]! - 30) dark += 1 / n;
        }
      }
      return [...mean, Math.sqrt(variance), gradient, dark];
    };
    const accuracy = (texture: boolean) => {
      const f = Array.from({ length: big.size }, (_, i) => features(i, texture));
      const d = f[0]!.length;
      const mu = Array.from({ length: d }, (_, j) => f.reduce((a, v) => a + v[j]!, 0) / f.length);
      const sd = Array.from({ length: d }, (_, j) => Math.sqrt(f.reduce((a, v) => a + (v[j]! - mu[j]!) ** 2, 0) / f.length));
      const z = f.map((v) => v.map((x, j) => (x - mu[j]!) / sd[j]!));
      let correct = 0;
      for (let hold = 0; hold < 4; hold++) {
        const centroids = [0, 1, 2, 3].map((c) => {
          const members = z.filter((_, i) => big.groups![i] !== hold && big.labels[i] === c);
          return Array.from({ length: d }, (_, j) => members.reduce((a, v) => a + v[j]!, 0) / members.length);
        });
        z.forEach((v, i) => {
          if (big.groups![i] !== hold) return;
          const dist = centroids.map((c) => c.reduce((a, x, j) => a + (x - v[j]!) ** 2, 0));
          if (dist.indexOf(Math.min(...dist)) === big.labels[i]) correct++;
        });
      }
      return correct / big.size;
    };
    const colour = accuracy(false);
    const texture = accuracy(true);
    // Chance is 0.25; measured (seed 3): colour 0.48, texture 0.72.
    expect(colour).toBeLessThan(0.6);
    expect(texture).toBeGreaterThan(0.65);
    expect(texture - colour).toBeGreaterThan(0.15);
  });
});

describe('synthetic slides through loadDataSplits and on disk', () => {
  it('gives unlabelled train patches with neighbours, and LOGO probe data with a held-out slide', async () => {
    const lines: string[] = [];
    const cfg = DataSchema.parse({ kind: 'synthetic_slides', slides: { train_slides: 2, eval_slides: 3, grid: 6, patch_size: 16, gap_fraction: 0.35 } });
    const splits = await loadDataSplits(cfg, 5, { log: (l) => lines.push(l) });
    const direct = makeSyntheticSlides(cfg.slides, 5);
    expect(splits.train.size).toBe(direct.train.size);
    expect(splits.neighbours!.isolated).toBe(direct.neighbours.isolated);
    expect(splits.probeTrain!.groupNames).toEqual(['eval-slide-00', 'eval-slide-01']);
    expect(splits.test.groupNames).toEqual(['eval-slide-02']);
    expect(splits.probeTrain!.size + splits.test.size).toBe(direct.labelled.size);
    expect(splits.description).toMatch(/^synthetic_slides 16x16 \(\d+ train on 2 slides, \d+ without neighbour \/ \d+ probe-train \/ \d+ test on eval-slide-02, 4 classes\)$/);
    expect(lines.some((l) => l.includes('have no neighbour'))).toBe(direct.neighbours.isolated > 0);
    const limited = await loadDataSplits(DataSchema.parse({ ...cfg, limit: 7, test_limit: 4 }), 5);
    expect([limited.train.size, limited.test.size]).toEqual([7, 4]);
    expect(bytes(limited.train, 6).equals(bytes(splits.train, 6))).toBe(true);
  });

  it('writes the real formats, which the patch and folder loaders read back to the same data', async () => {
    const dir = scratchDir();
    const slides = small({ gap_fraction: 0.35 });
    const written = await writeSyntheticSlides(dir, slides, 5);
    const direct = makeSyntheticSlides(slides, 5);
    expect([written.patches, written.labelledPatches]).toEqual([direct.train.size, direct.labelled.size]);
    const cfg = DataSchema.parse({
      kind: 'patches',
      root: written.patchesDir,
      image_size: 16,
      cache_dir: `${dir}/cache`,
      labelled: { root: written.labelledDir },
    });
    const fromDisk = await loadDataSplits(cfg, 5);
    const inMemory = await loadDataSplits(DataSchema.parse({ kind: 'synthetic_slides', slides }), 5);
    expect(fromDisk.train.size).toBe(inMemory.train.size);
    expect(fromDisk.neighbours!.isolated).toBe(inMemory.neighbours!.isolated);
    // Same order (slide, row, column) and lossless PNG at the native size: identical pixels.
    for (let i = 0; i < fromDisk.train.size; i++) expect(bytes(fromDisk.train, i).equals(bytes(inMemory.train, i))).toBe(true);
    for (let i = 0; i < fromDisk.train.size; i++) {
      expect(fromDisk.neighbours!.count(i)).toBe(inMemory.neighbours!.count(i));
    }
    expect(fromDisk.probeTrain!.size).toBe(inMemory.probeTrain!.size);
    expect(fromDisk.test.groupNames).toEqual(['eval-slide-02']);
    expect(fromDisk.test.classNames).toEqual([...TISSUE_CLASS_NAMES.slice(0, 4)].sort());
    // A labelled file sits in its class folder.
    const i = 0;
    const cls = fromDisk.test.classNames[fromDisk.test.labels[i]!]!;
    expect(fromDisk.test.sources![i]!.split('/').at(-2)).toBe(cls);
    expect(basename(fromDisk.test.sources![i]!)).toMatch(/^eval-slide-02_\d+_\d+\.png$/);
  });
});
