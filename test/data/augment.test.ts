import { describe, expect, it } from 'vitest';
import type { AugmentConfig } from '../../src/config/schema.js';
import {
  applyColorJitter,
  augmentBatch,
  augmentView,
  augmentViews,
  blurKernelSize,
  blurProbability,
  preprocessEval,
  sampleCropBox,
  sampleJitter,
  type JitterParams,
} from '../../src/data/augment.js';
import { ArrayImageDataset } from '../../src/data/dataset.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { Rng } from '../../src/util/rng.js';

/** The schema defaults (SimSiam recipe). */
const DEFAULTS: AugmentConfig = {
  crop_scale: [0.2, 1],
  crop_ratio: [3 / 4, 4 / 3],
  jitter_prob: 0.8,
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.4,
  hue: 0.1,
  grayscale_prob: 0.2,
  blur_prob: 'auto',
  blur_sigma: [0.1, 2],
  flip_prob: 0.5,
};
/** Every random transform off, crop = whole image. */
const IDENTITY: AugmentConfig = {
  ...DEFAULTS,
  crop_scale: [1, 1],
  crop_ratio: [1, 1],
  jitter_prob: 0,
  grayscale_prob: 0,
  blur_prob: 0,
  flip_prob: 0,
};
const KEY = { seed: 11, epoch: 2 };

const ds40 = makeSynthetic({ size: 40, count: 12, seed: 5, split: 'train' });

/** A single-image dataset from a per-pixel function. */
function imageOf(n: number, f: (y: number, x: number, c: number) => number): ArrayImageDataset {
  const px = new Uint8Array(n * n * 3);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) for (let c = 0; c < 3; c++) px[(y * n + x) * 3 + c] = f(y, x, c);
  return new ArrayImageDataset(px, n, n, new Int32Array(1), []);
}

function view(ds: ArrayImageDataset, item: number, outSize: number, cfg: AugmentConfig, v = 0): Float32Array {
  return augmentBatch(ds, [item], outSize, cfg, 'bit', KEY, v + 1)[v]!;
}

/** Max |a - b| over two equal-length arrays. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('augmentBatch', () => {
  it('returns one finite NHWC buffer per view', () => {
    const views = augmentBatch(ds40, [0, 3, 7], 32, { ...DEFAULTS, blur_prob: 1 }, 'imagenet', KEY, 2);
    expect(views).toHaveLength(2);
    for (const v of views) {
      expect(v.length).toBe(3 * 32 * 32 * 3);
      expect(v.every(Number.isFinite)).toBe(true);
    }
  });

  it('stays within [-1, 1] with bit normalisation', () => {
    const [v] = augmentBatch(ds40, [0, 1, 2, 3, 4, 5], 32, DEFAULTS, 'bit', KEY, 1);
    expect(Math.min(...v!)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...v!)).toBeLessThanOrEqual(1);
  });

  it('is deterministic per key, independent of batch composition, and differs per view and epoch', () => {
    const a = augmentBatch(ds40, [4, 9], 32, DEFAULTS, 'bit', KEY, 2);
    const b = augmentBatch(ds40, [4, 9], 32, DEFAULTS, 'bit', KEY, 2);
    expect(maxDiff(a[0]!, b[0]!)).toBe(0);
    expect(maxDiff(a[1]!, b[1]!)).toBe(0);
    // Item 9 alone gives the same pixels as item 9 in second position.
    const alone = augmentBatch(ds40, [9], 32, DEFAULTS, 'bit', KEY, 1)[0]!;
    expect(maxDiff(alone, a[0]!.subarray(32 * 32 * 3))).toBe(0);
    expect(maxDiff(a[0]!, a[1]!)).toBeGreaterThan(0.1);
    const nextEpoch = augmentBatch(ds40, [4, 9], 32, DEFAULTS, 'bit', { ...KEY, epoch: 3 }, 1)[0]!;
    expect(maxDiff(a[0]!, nextEpoch)).toBeGreaterThan(0.1);
  });

  it('with every transform off equals preprocessEval (resize and same-size copy)', () => {
    for (const outSize of [32, 40, 56]) {
      const aug = augmentBatch(ds40, [0, 1, 2], outSize, IDENTITY, 'imagenet', KEY, 1)[0]!;
      expect(maxDiff(aug, preprocessEval(ds40, [0, 1, 2], outSize, 'imagenet'))).toBe(0);
    }
  });

  it('flip with probability 1 mirrors the same crop exactly', () => {
    const cfg = { ...DEFAULTS, flip_prob: 0 };
    const plain = view(ds40, 3, 32, cfg);
    const flipped = view(ds40, 3, 32, { ...cfg, flip_prob: 1 });
    let worst = 0;
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) {
          worst = Math.max(worst, Math.abs(flipped[(y * 32 + x) * 3 + c]! - plain[(y * 32 + 31 - x) * 3 + c]!));
        }
      }
    }
    expect(worst).toBe(0);
    expect(maxDiff(plain, flipped)).toBeGreaterThan(0.1);
  });

  it('grayscale with probability 1 gives equal channels, weighted by ITU-R 601 luma', () => {
    const g = view(ds40, 2, 32, { ...DEFAULTS, grayscale_prob: 1 });
    for (let p = 0; p < 32 * 32; p++) {
      expect(g[p * 3 + 1]).toBe(g[p * 3]);
      expect(g[p * 3 + 2]).toBe(g[p * 3]);
    }
    const rgb = imageOf(8, (_y, _x, c) => [200, 100, 50][c]!);
    const [out] = augmentBatch(rgb, [0], 8, { ...IDENTITY, grayscale_prob: 1 }, 'bit', KEY, 1);
    expect((out![0]! + 1) * 127.5).toBeCloseTo(0.299 * 200 + 0.587 * 100 + 0.114 * 50, 3);
  });

  it('normalises a white image to exactly 1 (bit) and to (1 - mean) / std (imagenet)', () => {
    const white = imageOf(48, () => 255);
    // Brightness is the only transform that changes a white image; everything else must keep it.
    const cfg = { ...DEFAULTS, brightness: 0, jitter_prob: 1, grayscale_prob: 0.5, blur_prob: 1 };
    const [bit] = augmentBatch(white, [0], 32, cfg, 'bit', KEY, 1);
    expect(bit!.every((v) => v === 1)).toBe(true);
    const [imnet] = augmentBatch(white, [0], 32, cfg, 'imagenet', KEY, 1);
    const expected = [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225];
    for (let c = 0; c < 3; c++) expect(imnet![c * 3 + c]).toBeCloseTo(expected[c]!, 5);
    const [black] = augmentBatch(imageOf(32, () => 0), [0], 32, IDENTITY, 'imagenet', KEY, 1);
    expect([black![0], black![1], black![2]].map((v) => v.toFixed(4))).toEqual(
      [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225].map((v) => v.toFixed(4)),
    );
  });

  it('blurs only when asked: blur smooths a checkerboard, auto is off at 32 px', () => {
    const checker = imageOf(64, (y, x) => (((y >> 1) + (x >> 1)) % 2 ? 255 : 0));
    const variance = (v: Float32Array) => {
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      return v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length;
    };
    const sharp = view(checker, 0, 64, { ...IDENTITY, blur_prob: 0 });
    const blurred = view(checker, 0, 64, { ...IDENTITY, blur_prob: 1, blur_sigma: [1.5, 1.5] });
    expect(variance(blurred)).toBeLessThan(0.3 * variance(sharp));
    expect(blurProbability(DEFAULTS, 32)).toBe(0);
    expect(blurProbability(DEFAULTS, 64)).toBe(0.5);
    expect(blurProbability({ ...DEFAULTS, blur_prob: 0.3 }, 32)).toBe(0.3);
    expect([blurKernelSize(224), blurKernelSize(32), blurKernelSize(64)]).toEqual([23, 3, 7]);
  });

  it('writes at the given offset of a caller buffer and leaves the rest alone', () => {
    const out = new Float32Array(2 * 16 * 16 * 3).fill(7);
    augmentView(ds40.image(0), 40, 40, 16, DEFAULTS, new Rng(1), out, 16 * 16 * 3, 'bit');
    expect(out.subarray(0, 16 * 16 * 3).every((v) => v === 7)).toBe(true);
    expect(out.subarray(16 * 16 * 3).every((v) => v >= -1 && v <= 1)).toBe(true);
  });
});

describe('resampling', () => {
  /** Decodes channel 0 of a bit-normalised image back to 0..255. */
  const pixel = (v: Float32Array, n: number, y: number, x: number) => (v[(y * n + x) * 3]! + 1) * 127.5;

  it('downscales with pixel centres at +0.5 (2x: mean of each pair of a ramp)', () => {
    const ramp = imageOf(64, (_y, x) => 4 * x);
    const out = preprocessEval(ramp, [0], 32, 'bit');
    for (const x of [1, 8, 20, 30]) expect(pixel(out, 32, 5, x)).toBeCloseTo(4 * (2 * x + 0.5), 3);
  });

  it('antialiases when shrinking: a one-pixel line keeps its mass wherever it falls', () => {
    for (const col of [20, 21, 22, 23]) {
      const line = imageOf(64, (_y, x) => (x === col ? 255 : 0));
      const out = preprocessEval(line, [0], 16, 'bit');
      let mass = 0;
      for (let x = 0; x < 16; x++) mass += pixel(out, 16, 8, x);
      expect(mass).toBeCloseTo(255 / 4, 0);
    }
  });

  it('upscales bilinearly (2x: interpolates between neighbours)', () => {
    const ramp = imageOf(16, (_y, x) => 16 * x);
    const out = preprocessEval(ramp, [0], 32, 'bit');
    for (const x of [1, 9, 20, 30]) expect(pixel(out, 32, 3, x)).toBeCloseTo(16 * ((x + 0.5) / 2 - 0.5), 3);
    // Edges replicate instead of fading to black.
    expect(pixel(out, 32, 3, 0)).toBeCloseTo(0, 5);
    expect(pixel(out, 32, 3, 31)).toBeCloseTo(240, 3);
  });
});

describe('sampleCropBox', () => {
  it('keeps the area fraction within scale and the aspect within ratio, inside the image', () => {
    const [h, w] = [96, 128];
    const scale: [number, number] = [0.2, 1];
    const ratio: [number, number] = [3 / 4, 4 / 3];
    let minFrac = 1;
    for (let i = 0; i < 2000; i++) {
      const box = sampleCropBox(h, w, scale, ratio, new Rng(3, i));
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top + box.height).toBeLessThanOrEqual(h);
      expect(box.left + box.width).toBeLessThanOrEqual(w);
      // Sides are rounded to whole pixels: allow half a pixel on each.
      const frac = (box.height * box.width) / (h * w);
      const slack = (box.height + box.width) / (h * w);
      expect(frac).toBeGreaterThanOrEqual(scale[0] - slack);
      expect(frac).toBeLessThanOrEqual(scale[1] + slack);
      const aspect = box.width / box.height;
      expect(aspect).toBeGreaterThan(ratio[0] * (1 - 1 / box.height) - 1e-9);
      expect(aspect).toBeLessThan(ratio[1] * (1 + 1 / box.height) + 1e-9);
      minFrac = Math.min(minFrac, frac);
    }
    expect(minFrac).toBeLessThan(0.22);
  });

  it('falls back to a centre crop clamped to the ratio range when no attempt fits', () => {
    // Aspect >= 2 at full area never fits a square image.
    expect(sampleCropBox(40, 40, [1, 1], [2, 3], new Rng(1))).toEqual({ top: 10, left: 0, height: 20, width: 40 });
    expect(sampleCropBox(40, 40, [1, 1], [1 / 3, 1 / 2], new Rng(1))).toEqual({
      top: 0,
      left: 10,
      height: 40,
      width: 20,
    });
  });
});

describe('ColorJitter', () => {
  it('draws factors in torchvision ranges and a random order', () => {
    const seen = { bMin: 9, bMax: 0, cMin: 9, cMax: 0, hMin: 9, hMax: -9 };
    const firsts = new Set<number>();
    for (let i = 0; i < 3000; i++) {
      const p = sampleJitter(DEFAULTS, new Rng(9, i));
      expect([...p.order].sort()).toEqual([0, 1, 2, 3]);
      firsts.add(p.order[0]!);
      seen.bMin = Math.min(seen.bMin, p.brightness!);
      seen.bMax = Math.max(seen.bMax, p.brightness!);
      seen.cMin = Math.min(seen.cMin, p.contrast!);
      seen.cMax = Math.max(seen.cMax, p.contrast!);
      seen.hMin = Math.min(seen.hMin, p.hue!);
      seen.hMax = Math.max(seen.hMax, p.hue!);
      expect(p.saturation!).toBeGreaterThanOrEqual(0.6);
      expect(p.saturation!).toBeLessThanOrEqual(1.4);
    }
    expect(seen.bMin).toBeGreaterThanOrEqual(0.6);
    expect(seen.bMin).toBeLessThan(0.61);
    expect(seen.bMax).toBeLessThanOrEqual(1.4);
    expect(seen.bMax).toBeGreaterThan(1.39);
    expect(seen.cMin).toBeGreaterThanOrEqual(0.6);
    expect(seen.cMax).toBeLessThanOrEqual(1.4);
    expect(seen.hMin).toBeGreaterThanOrEqual(-0.1);
    expect(seen.hMax).toBeLessThanOrEqual(0.1);
    expect(seen.hMax - seen.hMin).toBeGreaterThan(0.19);
    expect(firsts.size).toBe(4);
  });

  it('disables a zero factor and clamps the lower bound at 0', () => {
    const p = sampleJitter({ ...DEFAULTS, brightness: 0, hue: 0, contrast: 3 }, new Rng(1));
    expect(p.brightness).toBeNull();
    expect(p.hue).toBeNull();
    for (let i = 0; i < 200; i++) {
      const c = sampleJitter({ ...DEFAULTS, contrast: 3 }, new Rng(2, i)).contrast!;
      expect(c).toBeGreaterThanOrEqual(0);
      expect(c).toBeLessThanOrEqual(4);
    }
  });

  const only = (q: Partial<JitterParams>): JitterParams => ({
    order: Int32Array.of(0, 1, 2, 3),
    brightness: null,
    contrast: null,
    saturation: null,
    hue: null,
    ...q,
  });
  const apply = (pixels: number[], q: Partial<JitterParams>) => {
    const img = Float64Array.from(pixels);
    applyColorJitter(img, img.length, only(q));
    return [...img].map((v) => Math.round(v * 1000) / 1000);
  };

  it('applies brightness, contrast, saturation and hue as torchvision defines them', () => {
    expect(apply([100, 200, 50], { brightness: 1.5 })).toEqual([150, 255, 75]);
    // Contrast blends towards the mean luma of the whole image (two pixels: luma 0 and 255).
    expect(apply([0, 0, 0, 255, 255, 255], { contrast: 0.5 })).toEqual([63.75, 63.75, 63.75, 191.25, 191.25, 191.25]);
    // Saturation 0 is the pixel's own luma.
    const luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50;
    expect(apply([200, 100, 50], { saturation: 0 })).toEqual([luma, luma, luma].map((v) => Math.round(v * 1000) / 1000));
    // A third of a turn takes red to green and green to blue; half a turn takes red to cyan.
    expect(apply([255, 0, 0, 0, 200, 0], { hue: 1 / 3 })).toEqual([0, 255, 0, 0, 0, 200]);
    expect(apply([255, 0, 0], { hue: -0.5 })).toEqual([0, 255, 255]);
    // Hue keeps value (max) and saturation: an orange goes to a violet of the same max/min.
    const violet = apply([240, 120, 60], { hue: 0.5 });
    expect(Math.max(...violet)).toBeCloseTo(240, 6);
    expect(Math.min(...violet)).toBeCloseTo(60, 6);
    expect(violet[2]).toBeCloseTo(240, 6);
    // Grey pixels have no hue.
    expect(apply([90, 90, 90], { hue: 0.3 })).toEqual([90, 90, 90]);
  });

  it('applies the ops in the drawn order (clamping makes order visible)', () => {
    const bFirst = apply([200, 200, 200, 0, 0, 0], { brightness: 2, contrast: 0.5, order: Int32Array.of(0, 1, 2, 3) });
    const cFirst = apply([200, 200, 200, 0, 0, 0], { brightness: 2, contrast: 0.5, order: Int32Array.of(1, 0, 2, 3) });
    expect(bFirst).toEqual([191.25, 191.25, 191.25, 63.75, 63.75, 63.75]);
    expect(cFirst).toEqual([255, 255, 255, 100, 100, 100]);
  });
});

describe('augmentViews: views of different items (SimTriplet)', () => {
  /** Flat images of distinct colours: item k is (10k, 20k + 5, 250 - 10k). */
  const flat = (() => {
    const n = 6;
    const side = 8;
    const px = new Uint8Array(n * side * side * 3);
    for (let k = 0; k < n; k++) {
      for (let p = 0; p < side * side; p++) px.set([10 * k, 20 * k + 5, 250 - 10 * k], (k * side * side + p) * 3);
    }
    return new ArrayImageDataset(px, side, side, new Int32Array(n), []);
  })();
  const per = 8 * 8 * 3;
  /** The item whose colour fills row `row` of a bit-normalised view. */
  const itemOf = (view: Float32Array, row: number): number => Math.round(((view[row * per]! + 1) * 127.5) / 10);

  it('row i of view v shows item viewItems[v][i]: the neighbour view really comes from the neighbour', () => {
    const anchors = [0, 1, 2, 3];
    const neighbours = [5, 3, 2, 4]; // item 2 is isolated: its own neighbour
    const views = augmentViews(flat, [anchors, neighbours, anchors], 8, IDENTITY, 'bit', KEY);
    expect(views).toHaveLength(3);
    expect([0, 1, 2, 3].map((i) => itemOf(views[0]!, i))).toEqual(anchors);
    expect([0, 1, 2, 3].map((i) => itemOf(views[1]!, i))).toEqual(neighbours);
    expect([0, 1, 2, 3].map((i) => itemOf(views[2]!, i))).toEqual(anchors);
    // Every pixel of a row is its item's colour (nothing mixed across rows).
    const g = (20 * 4 + 5) / 127.5 - 1;
    for (let p = 0; p < 64; p++) expect(views[1]![3 * per + p * 3 + 1]).toBeCloseTo(g, 5);
  });

  it('draws view v of item j from Rng(seed, "aug", epoch, j, v), whatever else is in the batch', () => {
    const views = augmentViews(ds40, [[3, 7], [8, 3], [3, 7]], 32, DEFAULTS, 'imagenet', KEY);
    const per32 = 32 * 32 * 3;
    const expectView = (item: number, v: number): Float32Array => {
      const out = new Float32Array(per32);
      augmentView(ds40.image(item), 40, 40, 32, DEFAULTS, new Rng(KEY.seed, 'aug', KEY.epoch, item, v), out, 0, 'imagenet');
      return out;
    };
    expect(views[1]!.subarray(0, per32)).toEqual(expectView(8, 1));
    expect(views[1]!.subarray(per32)).toEqual(expectView(3, 1));
    expect(views[2]!.subarray(0, per32)).toEqual(expectView(3, 2));
    // The anchor's two views differ (views 0 and 2 are independent draws), as does its neighbour-slot view.
    expect(maxDiff(views[0]!.subarray(0, per32), views[2]!.subarray(0, per32))).toBeGreaterThan(0.1);
    expect(maxDiff(expectView(3, 1), views[0]!.subarray(0, per32))).toBeGreaterThan(0.1);
  });

  it('with the same items in every view it is augmentBatch (SimSiam runs are unchanged)', () => {
    const a = augmentBatch(ds40, [4, 9, 1], 32, DEFAULTS, 'bit', KEY, 2);
    const b = augmentViews(ds40, [[4, 9, 1], [4, 9, 1]], 32, DEFAULTS, 'bit', KEY);
    expect(b).toEqual(a);
  });

  it('rejects views listing different numbers of items', () => {
    expect(() => augmentViews(ds40, [[1, 2], [3]], 32, DEFAULTS, 'bit', KEY)).toThrow(/view 1 lists 1 items, view 0 lists 2/);
  });
});
