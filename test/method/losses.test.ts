// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { relativeError, useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { accuracy, collapseStd, cosineSimilarity, crossEntropy, negativeCosine, simsiamLoss } from '../../src/method/losses.js';
import { Rng } from '../../src/util/rng.js';
import { norm, refCos, refD, refDGrad, randMat, t2, type Mat } from './reference.js';

beforeAll(useCpuBackend);

const refLoss = (p1: Mat, p2: Mat, z1: Mat, z2: Mat): number => refD(p1, z2) / 2 + refD(p2, z1) / 2;

const scalar = (t: tf.Tensor): number => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};

describe('cosineSimilarity', () => {
  it('matches a float64 reference row by row', () => {
    const rng = new Rng(1, 'cos');
    const a = randMat(6, 9, rng);
    const b = randMat(6, 9, rng);
    // Rows of very different scales: cosine is scale-invariant.
    a[1] = a[1]!.map((v) => v * 1e3);
    b[2] = b[2]!.map((v) => v * 1e-2);
    b[3] = a[3]!.map((v) => -2 * v); // anti-parallel: exactly -1
    const out = cosineSimilarity(t2(a), t2(b));
    expect(out.shape).toEqual([6]);
    const got = out.dataSync();
    a.forEach((row, i) => expect(got[i]).toBeCloseTo(refCos(row, b[i]!), 6));
    expect(got[3]).toBeCloseTo(-1, 6);
  });

  it('clamps the norm product at 1e-8 for near-zero vectors and gives 0, not NaN, for zero vectors', () => {
    // |a| = |b| = 2e-5: the product 4e-10 is below the clamp, so cos = 4e-10 / 1e-8 = 0.04.
    const tiny = [1e-5, 1e-5, 1e-5, 1e-5];
    const a = [tiny, [0, 0, 0, 0], [1e-3, 0, 0, 0], [1e-3, 2e-3, 0, 0]];
    const b = [tiny, [1, 2, 3, 4], [1e-6, 0, 0, 0], [2e-3, 4e-3, 0, 0]];
    const got = cosineSimilarity(t2(a), t2(b)).dataSync();
    expect(got[0]).toBeCloseTo(0.04, 5);
    expect(refCos(tiny, tiny)).toBeCloseTo(0.04, 12);
    expect(got[1]).toBe(0);
    // |a||b| = 1e-9 < 1e-8: clamped to 1e-9 / 1e-8 = 0.1 although the vectors are parallel.
    expect(got[2]).toBeCloseTo(0.1, 5);
    // |a||b| = 1e-5 > 1e-8: no clamp, parallel vectors give 1.
    expect(got[3]).toBeCloseTo(1, 5);
    a.forEach((row, i) => expect(got[i]).toBeCloseTo(refCos(row, b[i]!), 5));
  });
});

describe('negativeCosine', () => {
  it('is -mean cos, within [-1, 1]: -1 when aligned, +1 when opposite', () => {
    const rng = new Rng(2, 'negcos');
    for (let trial = 0; trial < 5; trial++) {
      const p = randMat(8, 5, rng);
      const z = randMat(8, 5, rng);
      const v = scalar(negativeCosine(t2(p), t2(z)));
      expect(v).toBeGreaterThanOrEqual(-1);
      expect(v).toBeLessThanOrEqual(1);
      expect(v).toBeCloseTo(refD(p, z), 6);
    }
    const p = randMat(8, 5, rng);
    const scaled = p.map((r, i) => r.map((v) => v * (i + 0.5)));
    expect(scalar(negativeCosine(t2(p), t2(scaled)))).toBeCloseTo(-1, 6);
    expect(scalar(negativeCosine(t2(p), t2(p.map((r) => r.map((v) => -3 * v)))))).toBeCloseTo(1, 6);
  });

  it('is a batch mean, not a sum', () => {
    // Two aligned rows: the sum would give -2.
    const p = [[1, 0], [0, 1]];
    expect(scalar(negativeCosine(t2(p), t2(p)))).toBeCloseTo(-1, 6);
  });
});

describe('simsiamLoss', () => {
  const rng = new Rng(3, 'simsiam-loss');
  const [p1, p2, z1, z2] = [0, 1, 2, 3].map(() => randMat(5, 7, rng)) as [Mat, Mat, Mat, Mat];

  it('equals D(p1, z2)/2 + D(p2, z1)/2 (cross terms, not D(p1, z1))', () => {
    const v = scalar(simsiamLoss(t2(p1), t2(p2), t2(z1), t2(z2)));
    expect(v).toBeCloseTo(refLoss(p1, p2, z1, z2), 6);
    // The same-view pairing gives a clearly different value on this data.
    expect(Math.abs(refD(p1, z1) / 2 + refD(p2, z2) / 2 - refLoss(p1, p2, z1, z2))).toBeGreaterThan(0.05);
    expect(v).toBeGreaterThanOrEqual(-1);
    expect(v).toBeLessThanOrEqual(1);
  });

  it('is -1 when each p points along the other view\'s z', () => {
    const p1a = z2.map((r) => r.map((v) => 2 * v));
    const p2a = z1.map((r) => r.map((v) => 0.5 * v));
    expect(scalar(simsiamLoss(t2(p1a), t2(p2a), t2(z1), t2(z2)))).toBeCloseTo(-1, 6);
    // ... and +1 when opposite.
    const p1o = z2.map((r) => r.map((v) => -v));
    const p2o = z1.map((r) => r.map((v) => -v));
    expect(scalar(simsiamLoss(t2(p1o), t2(p2o), t2(z1), t2(z2)))).toBeCloseTo(1, 6);
  });

  it('is symmetric in swapping the views', () => {
    const a = scalar(simsiamLoss(t2(p1), t2(p2), t2(z1), t2(z2)));
    const b = scalar(simsiamLoss(t2(p2), t2(p1), t2(z2), t2(z1)));
    expect(a).toBeCloseTo(b, 7);
  });

  it('has the analytic float64 gradient w.r.t. p1 and p2', () => {
    const [g1, g2] = tf.grads((a: tf.Tensor, b: tf.Tensor) => simsiamLoss(a as tf.Tensor2D, b as tf.Tensor2D, t2(z1), t2(z2)))([t2(p1), t2(p2)]);
    const e1 = refDGrad(p1, z2).map((r) => r.map((v) => v / 2));
    const e2 = refDGrad(p2, z1).map((r) => r.map((v) => v / 2));
    expect(relativeError(g1!.dataSync(), e1.flat())).toBeLessThan(1e-5);
    expect(relativeError(g2!.dataSync(), e2.flat())).toBeLessThan(1e-5);
  });

  it('agrees with central finite differences (float32, eps 1e-2)', () => {
    const f = (a: Mat, b: Mat): number => scalar(simsiamLoss(t2(a), t2(b), t2(z1), t2(z2)));
    const [g1, g2] = tf.grads((a: tf.Tensor, b: tf.Tensor) => simsiamLoss(a as tf.Tensor2D, b as tf.Tensor2D, t2(z1), t2(z2)))([t2(p1), t2(p2)]);
    const analytic = [g1!.arraySync() as Mat, g2!.arraySync() as Mat];
    const eps = 1e-2;
    let checked = 0;
    for (const which of [0, 1]) {
      for (const [i, k] of [[0, 0], [1, 3], [2, 6], [4, 2]] as const) {
        const plus = [p1.map((r) => [...r]), p2.map((r) => [...r])];
        const minus = [p1.map((r) => [...r]), p2.map((r) => [...r])];
        plus[which]![i]![k]! += eps;
        minus[which]![i]![k]! -= eps;
        const fd = (f(plus[0]!, plus[1]!) - f(minus[0]!, minus[1]!)) / (2 * eps);
        // Float32 loss ~ 1e-7 abs error / 2e-2 ~ 1e-5, truncation O(eps^2) ~ 1e-4 of the gradient scale.
        expect(Math.abs(fd - analytic[which]![i]![k]!)).toBeLessThan(5e-4);
        checked++;
      }
    }
    expect(checked).toBe(8);
    // The check is meaningful: the gradient entries are far above the tolerance.
    expect(Math.max(...analytic.flat(2).map(Math.abs))).toBeGreaterThan(1e-2);
  });
});

describe('collapseStd', () => {
  it('is about 1/sqrt(d) for random Gaussian z', () => {
    const d = 64;
    const z = tf.randomNormal([4096, d], 0, 1, 'float32', 5) as tf.Tensor2D;
    const v = scalar(collapseStd(z));
    expect(Math.abs(v - 1 / Math.sqrt(d)) / (1 / Math.sqrt(d))).toBeLessThan(0.02);
    z.dispose();
  });

  it('is about 0 for a collapsed batch (all rows equal), whatever their scale', () => {
    const row = [0.3, -1.2, 2.5, 0.7, -0.1, 4];
    const collapsed = Array.from({ length: 32 }, (_, i) => row.map((v) => v * (1 + i))); // same direction
    expect(scalar(collapseStd(t2(collapsed)))).toBeLessThan(1e-5);
  });

  it('normalises each row first and uses the unbiased std over the batch, averaged over channels', () => {
    const rng = new Rng(6, 'collapse');
    const z = randMat(5, 4, rng).map((r, i) => r.map((v) => v * 10 ** (i - 2))); // scales 1e-2 .. 1e2
    const zn = z.map((r) => r.map((v) => v / norm(r)));
    let acc = 0;
    for (let c = 0; c < 4; c++) {
      const col = zn.map((r) => r[c]!);
      const m = col.reduce((a, b) => a + b, 0) / col.length;
      acc += Math.sqrt(col.reduce((a, b) => a + (b - m) ** 2, 0) / (col.length - 1));
    }
    expect(scalar(collapseStd(t2(z)))).toBeCloseTo(acc / 4, 5);
  });
});

describe('crossEntropy and accuracy', () => {
  const rng = new Rng(8, 'ce');
  const logits = randMat(5, 4, rng).map((r) => r.map((v) => 3 * v));
  const labels = [0, 3, 1, 1, 2];
  const lab = (): tf.Tensor1D => tf.tensor1d(labels, 'int32');
  /** Float64 softmax of one row. */
  const softmax = (r: number[]): number[] => {
    const m = Math.max(...r);
    const e = r.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };

  it('is the mean of -log softmax at the label', () => {
    const expected = -logits.reduce((s, r, i) => s + Math.log(softmax(r)[labels[i]!]!), 0) / logits.length;
    expect(scalar(crossEntropy(t2(logits), lab()))).toBeCloseTo(expected, 5);
    // Zero logits: ln K whatever the labels.
    expect(scalar(crossEntropy(tf.zeros([5, 4]) as tf.Tensor2D, lab()))).toBeCloseTo(Math.log(4), 6);
  });

  it('stays finite for huge logits (log-softmax, not log of softmax)', () => {
    const big = [[1000, -1000, 0], [-1000, 1000, 0]];
    expect(scalar(crossEntropy(t2(big), tf.tensor1d([1, 1], 'int32')))).toBeCloseTo(1000, 3);
  });

  it('has the gradient (softmax - onehot) / N', () => {
    const g = tf.grad((x: tf.Tensor) => crossEntropy(x as tf.Tensor2D, lab()))(t2(logits));
    const expected = logits.flatMap((r, i) => softmax(r).map((p, k) => (p - (k === labels[i] ? 1 : 0)) / logits.length));
    expect(relativeError(g.dataSync(), expected)).toBeLessThan(1e-5);
    g.dispose();
  });

  it('accuracy is the fraction of rows whose arg-max is the label', () => {
    const x = [[2, 1, 0], [0, 1, 2], [0, 5, 1], [3, 0, 0]];
    expect(scalar(accuracy(t2(x), tf.tensor1d([0, 2, 0, 1], 'int32')))).toBeCloseTo(0.5, 7);
  });
});
