import { describe, expect, it } from 'vitest';
import type { ImageDataset } from '../../src/data/dataset.js';
import { makeSynthetic, SYNTHETIC_CLASS_NAMES } from '../../src/data/synthetic.js';

const opts = { size: 32, count: 200, seed: 7, split: 'train' as const };

function fractionDiffering(a: Uint8Array, b: Uint8Array): number {
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) diff++;
  return diff / a.length;
}

/**
 * Colour- and position-free features: the magnitude-weighted histogram of gradient orientations of
 * the contrast-normalised luma, the mean gradient magnitude and the fraction of edge pixels.
 */
function edgeFeatures(img: Uint8Array, n: number): number[] {
  const g = new Float64Array(n * n);
  let mean = 0;
  for (let i = 0; i < n * n; i++) {
    g[i] = 0.299 * img[i * 3]! + 0.587 * img[i * 3 + 1]! + 0.114 * img[i * 3 + 2]!;
    mean += g[i]! / (n * n);
  }
  let variance = 0;
  for (let i = 0; i < n * n; i++) variance += (g[i]! - mean) ** 2 / (n * n);
  const sd = Math.sqrt(variance) + 1e-6;
  const hist = new Array<number>(8).fill(0);
  let energy = 0;
  let edges = 0;
  for (let y = 1; y < n - 1; y++) {
    for (let x = 1; x < n - 1; x++) {
      const gx = (g[y * n + x + 1]! - g[y * n + x - 1]!) / sd;
      const gy = (g[(y + 1) * n + x]! - g[(y - 1) * n + x]!) / sd;
      const m = Math.sqrt(gx * gx + gy * gy);
      energy += m;
      if (m > 0.5) edges++;
      const angle = (Math.atan2(gy, gx) + Math.PI) % Math.PI;
      hist[Math.min(7, Math.floor((angle / Math.PI) * 8))]! += m;
    }
  }
  const inner = (n - 2) ** 2;
  return [...hist.map((h) => h / (energy + 1e-9)), energy / inner, edges / inner];
}

/** Nearest-centroid accuracy on standardised edge features: train on one split, score the other. */
function nearestCentroidAccuracy(train: ImageDataset, test: ImageDataset): number {
  const feats = (ds: ImageDataset) => Array.from({ length: ds.size }, (_, i) => edgeFeatures(ds.image(i), ds.width));
  const ftrain = feats(train);
  const dims = ftrain[0]!.length;
  const mean = new Array<number>(dims).fill(0);
  ftrain.forEach((f) => f.forEach((x, j) => (mean[j]! += x / ftrain.length)));
  const sd = mean.map((m, j) => Math.sqrt(ftrain.reduce((a, f) => a + (f[j]! - m) ** 2, 0) / ftrain.length) + 1e-9);
  const centroids = Array.from({ length: 10 }, () => new Array<number>(dims).fill(0));
  const counts = new Array<number>(10).fill(0);
  ftrain.forEach((f, i) => {
    const c = train.labels[i]!;
    counts[c]!++;
    f.forEach((x, j) => (centroids[c]![j]! += x));
  });
  centroids.forEach((c, k) => c.forEach((_, j) => (c[j]! /= counts[k]!)));
  let correct = 0;
  feats(test).forEach((f, i) => {
    let best = -1;
    let bestDist = Infinity;
    centroids.forEach((c, k) => {
      const dist = c.reduce((a, x, j) => a + ((x - f[j]!) / sd[j]!) ** 2, 0);
      if (dist < bestDist) [best, bestDist] = [k, dist];
    });
    if (best === test.labels[i]) correct++;
  });
  return correct / test.size;
}

describe('makeSynthetic', () => {
  it('has the requested shape and human-readable class names', () => {
    const ds = makeSynthetic({ ...opts, size: 24, count: 13 });
    expect([ds.size, ds.height, ds.width, ds.pixels.length]).toEqual([13, 24, 24, 13 * 24 * 24 * 3]);
    expect(ds.classNames).toEqual(SYNTHETIC_CLASS_NAMES);
    expect(new Set(ds.classNames).size).toBe(10);
  });

  it('is deterministic for a seed and differs across seeds and splits', () => {
    const a = makeSynthetic(opts);
    expect(fractionDiffering(makeSynthetic(opts).pixels, a.pixels)).toBe(0);
    expect(fractionDiffering(makeSynthetic({ ...opts, seed: 8 }).pixels, a.pixels)).toBeGreaterThan(0.9);
    expect(fractionDiffering(makeSynthetic({ ...opts, split: 'test' }).pixels, a.pixels)).toBeGreaterThan(0.9);
  });

  it('keeps item i the same whatever the count (data.limit is a prefix)', () => {
    const small = makeSynthetic({ ...opts, count: 15 });
    expect(fractionDiffering(small.pixels, makeSynthetic(opts).head(15).pixels)).toBe(0);
  });

  it('has all 10 classes, balanced', () => {
    const counts = new Array<number>(10).fill(0);
    for (const l of makeSynthetic(opts).labels) counts[l]!++;
    expect(counts).toEqual(new Array(10).fill(20));
  });

  it('does not let the mean colour give the class away', () => {
    const ds = makeSynthetic({ ...opts, count: 400 });
    // Per-class mean RGB over all pixels: with random colours every class sits near mid-grey.
    const sums = Array.from({ length: 10 }, () => [0, 0, 0]);
    for (let i = 0; i < ds.size; i++) {
      const img = ds.image(i);
      for (let p = 0; p < img.length; p++) sums[ds.labels[i]!]![p % 3]! += img[p]! / (img.length / 3) / 40;
    }
    for (const s of sums) for (const v of s) expect(Math.abs(v - 127.5)).toBeLessThan(30);
  });

  it('makes classes separable by simple edge features (nearest centroid far above 10% chance)', () => {
    const train = makeSynthetic({ ...opts, count: 600 });
    const test = makeSynthetic({ ...opts, count: 300, split: 'test' });
    const acc = nearestCentroidAccuracy(train, test);
    expect(acc).toBeGreaterThan(0.55);
  });
});
