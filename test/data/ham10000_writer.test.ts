import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DataSchema } from '../../src/config/schema.js';
import type { ImageDataset } from '../../src/data/dataset.js';
import { HAM10000_CLASS_NAMES, HAM10000_METADATA } from '../../src/data/ham10000.js';
import { HAM10000_LESIONS, hamLesionMix, writeHam10000Folder } from '../../src/data/ham10000_writer.js';
import { loadDataSplits } from '../../src/data/index.js';
import { UserError } from '../../src/util/errors.js';
import { scratchDir } from './fixtures.js';

describe('hamLesionMix', () => {
  it('adds up, keeps 5 per class when it can, and follows the release otherwise', () => {
    for (const total of [7, 20, 35, 36, 100, 1000, 7470]) {
      const mix = hamLesionMix(total);
      expect(mix.reduce((a, b) => a + b, 0)).toBe(total);
      expect(Math.min(...mix)).toBeGreaterThanOrEqual(Math.min(5, Math.floor(total / 7)));
    }
    // nv dominates as in the release; the full size reproduces the release's counts.
    const hundred = hamLesionMix(100);
    expect(hundred.indexOf(Math.max(...hundred))).toBe(HAM10000_CLASS_NAMES.indexOf('nv'));
    expect(hamLesionMix(7470, 0)).toEqual([...HAM10000_LESIONS]);
    expect(hamLesionMix(20)).toEqual([2, 2, 3, 2, 3, 6, 2]);
    expect(() => hamLesionMix(6)).toThrow(UserError);
  });
});

/** Per-image colour features of the centre (lesion) and the border (skin), and their contrast. */
function features(ds: ImageDataset, i: number): number[] {
  const px = ds.image(i);
  const n = ds.width;
  const centre = [0, 0, 0, 0, 0, 0];
  const border = [0, 0, 0];
  let nc = 0;
  let nb = 0;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const r = Math.hypot(x + 0.5 - n / 2, y + 0.5 - n / 2) / n;
      const p = (y * n + x) * 3;
      if (r < 0.18) {
        for (let c = 0; c < 3; c++) {
          centre[c]! += px[p + c]!;
          centre[c + 3]! += px[p + c]! ** 2;
        }
        nc++;
      } else if (r > 0.4 && r < 0.5) {
        for (let c = 0; c < 3; c++) border[c]! += px[p + c]!;
        nb++;
      }
    }
  }
  const mean = centre.slice(0, 3).map((s) => s / nc);
  const std = centre.slice(3).map((s, c) => Math.sqrt(Math.max(0, s / nc - mean[c]! ** 2)));
  const skin = border.map((s) => s / nb);
  return [...mean, ...std, ...mean.map((m, c) => m - skin[c]!)];
}

describe('writeHam10000Folder', () => {
  it('paints classes a simple classifier tells apart on unseen lesions, and several views per lesion', async () => {
    const root = scratchDir('simtrip-ham-writer-');
    const w = await writeHam10000Folder(root, { lesionsPerClass: [8, 8, 8, 8, 8, 8, 8], width: 80, height: 60, seed: 2 });
    expect(readFileSync(join(root, HAM10000_METADATA), 'utf8').split('\r\n')[0]).toBe('lesion_id,image_id,dx,dx_type,age,sex,localization');
    const splits = await loadDataSplits(DataSchema.parse({ kind: 'ham10000', root, image_size: 32, cache_dir: join(root, '.cache'), split: { train: 0.6, val: 0, test: 0.4 } }), 1);
    const { train, test } = splits;
    expect(train.size + test.size).toBe(w.rows.length);

    // Nearest class centroid on standardised colour statistics, fitted on train lesions only.
    const trainX = Array.from({ length: train.size }, (_, i) => features(train, i));
    const dim = trainX[0]!.length;
    const mu = Array.from({ length: dim }, (_, d) => trainX.reduce((a, f) => a + f[d]!, 0) / trainX.length);
    const sd = Array.from({ length: dim }, (_, d) => Math.sqrt(trainX.reduce((a, f) => a + (f[d]! - mu[d]!) ** 2, 0) / trainX.length) || 1);
    const z = (f: number[]) => f.map((v, d) => (v - mu[d]!) / sd[d]!);
    const centroids = HAM10000_CLASS_NAMES.map((_, c) => {
      const members = trainX.filter((_, i) => train.labels[i] === c).map(z);
      return Array.from({ length: dim }, (_, d) => members.reduce((a, f) => a + f[d]!, 0) / members.length);
    });
    const recall = HAM10000_CLASS_NAMES.map(() => ({ hit: 0, n: 0 }));
    for (let i = 0; i < test.size; i++) {
      const f = z(features(test, i));
      const dist = centroids.map((c) => c.reduce((a, v, d) => a + (v - f[d]!) ** 2, 0));
      const r = recall[test.labels[i]!]!;
      r.n++;
      if (dist.indexOf(Math.min(...dist)) === test.labels[i]) r.hit++;
    }
    const balanced = recall.reduce((a, r) => a + r.hit / r.n, 0) / recall.length;
    // Chance is 1/7; colour statistics alone get well beyond it (structure adds more for a CNN).
    expect(balanced).toBeGreaterThan(0.4);

    // Two images of one lesion are different views of it.
    const byLesion = new Map<string, string[]>();
    for (const r of w.rows) byLesion.set(r.lesionId, [...(byLesion.get(r.lesionId) ?? []), r.imageId]);
    const [a, b] = [...byLesion.values()].find((ids) => ids.length > 1)!;
    expect(readFileSync(w.paths.get(a!)!).equals(readFileSync(w.paths.get(b!)!))).toBe(false);
  });
});
