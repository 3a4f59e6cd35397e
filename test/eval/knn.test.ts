// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files,
// which otherwise create the engine from a second tfjs-core copy whose Tensor methods are unwired.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { knnClassify } from '../../src/eval/knn.js';
import { tf } from '../../src/engine/tf.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const i32 = (xs: number[]): Int32Array => Int32Array.from(xs);

// One class-0 item on the query's direction, two class-1 items 60 degrees away (cosine 0.5).
const s = Math.sqrt(3) / 2;
const TRAIN = f32([1, 0, 0.5, s, 0.5, -s]);
const LABELS = i32([0, 1, 1]);
const QUERY = f32([1, 0]);

/** Float64 reference: cosine similarity, the k most similar vote with exp(sim / t), lowest class on ties. */
function referenceKnn(train: Float32Array, labels: Int32Array, test: Float32Array, dim: number, numClasses: number, k: number, t: number): Int32Array {
  const unit = (x: Float32Array, i: number): number[] => {
    const row = Array.from(x.subarray(i * dim, (i + 1) * dim));
    const n = Math.hypot(...row) || 1;
    return row.map((v) => v / n);
  };
  const bank = Array.from({ length: labels.length }, (_, i) => unit(train, i));
  const out = new Int32Array(test.length / dim);
  for (let q = 0; q < out.length; q++) {
    const u = unit(test, q);
    const sims = bank.map((b, i) => ({ i, sim: b.reduce((a, v, j) => a + v * u[j]!, 0) }));
    sims.sort((a, b) => b.sim - a.sim);
    const scores = new Float64Array(numClasses);
    for (const { i, sim } of sims.slice(0, Math.min(k, sims.length))) scores[labels[i]!]! += Math.exp(sim / t);
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (scores[c]! > scores[best]!) best = c;
    out[q] = best;
  }
  return out;
}

function clusters(n: number, dim: number, numClasses: number, seed: number): { x: Float32Array; y: Int32Array } {
  // Centres fixed across seeds, so train and test sets share their classes.
  const c = new Rng(dim, numClasses, 'knn-centres');
  const centres = Array.from({ length: numClasses }, () => Array.from({ length: dim }, () => c.normal()));
  const rng = new Rng(seed, 'knn-test');
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = rng.int(numClasses);
    y[i] = c;
    for (let j = 0; j < dim; j++) x[i * dim + j] = centres[c]![j]! + 0.9 * rng.normal();
  }
  return { x, y };
}

describe('knnClassify', () => {
  it('weights votes by similarity: the one close neighbour beats two far ones at low temperature', () => {
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 0.1)]).toEqual([0]);
    // A plain majority of the same 3 neighbours would say 1; the reference agrees with the weighted vote.
    expect([...referenceKnn(TRAIN, LABELS, QUERY, 2, 2, 3, 0.1)]).toEqual([0]);
  });

  it('temperature decides: class 1 wins once 2 exp(-0.5 / t) > 1, i.e. t > 0.72', () => {
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 0.5)]).toEqual([0]);
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 1)]).toEqual([1]);
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 100)]).toEqual([1]);
    // Very small t must not overflow exp (1 / 0.001 = 1000) into NaN votes.
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 0.001)]).toEqual([0]);
  });

  it('k = 1 is the nearest neighbour; k beyond the train size uses every item', () => {
    const query = f32([0.6, 0.8]); // nearest to (0.5, s): class 1
    expect([...knnClassify(TRAIN, LABELS, query, 2, 2, 1, 0.1)]).toEqual([1]);
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 1000, 1)]).toEqual([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 1)]);
    expect([...knnClassify(TRAIN, LABELS, QUERY, 2, 2, 1000, 1)]).toEqual([1]);
  });

  it('uses cosine similarity: rescaling train or test features changes nothing', () => {
    // Without normalisation, the long class-1 vectors would dominate the dot products.
    const scaled = TRAIN.map((v, i) => (i < 2 ? v * 0.01 : v * 100));
    expect([...knnClassify(scaled, LABELS, f32([5, 0]), 2, 2, 3, 0.1)]).toEqual([0]);
    expect([...knnClassify(scaled, LABELS, f32([5, 0]), 2, 2, 1, 0.1)]).toEqual([0]);
  });

  it('matches a float64 reference on clustered data, across several 256-row chunks', () => {
    const dim = 12;
    const numClasses = 4;
    const train = clusters(400, dim, numClasses, 1);
    const test = clusters(600, dim, numClasses, 2);
    const pred = knnClassify(train.x, train.y, test.x, dim, numClasses, 20, 0.1);
    const ref = referenceKnn(train.x, train.y, test.x, dim, numClasses, 20, 0.1);
    let agree = 0;
    for (let i = 0; i < pred.length; i++) if (pred[i] === ref[i]) agree++;
    // float32 vs float64 similarities may only flip a near-tie.
    expect(agree).toBeGreaterThanOrEqual(pred.length - 2);
    let correct = 0;
    for (let i = 0; i < pred.length; i++) if (pred[i] === test.y[i]) correct++;
    expect(correct / pred.length).toBeGreaterThan(0.8);
  });

  it('chunked classification (nTest > 256) equals classifying each block on its own', () => {
    const dim = 8;
    const train = clusters(300, dim, 3, 3);
    const test = clusters(700, dim, 3, 4);
    const whole = knnClassify(train.x, train.y, test.x, dim, 3, 15, 0.1);
    const pieces: number[] = [];
    for (let start = 0; start < 700; start += 100) {
      pieces.push(...knnClassify(train.x, train.y, test.x.subarray(start * dim, (start + 100) * dim), dim, 3, 15, 0.1));
    }
    expect([...whole]).toEqual(pieces);
    // The last, partial chunk (rows 512..699) is filled: no zeros left from the output buffer.
    const tail = knnClassify(train.x, train.y, test.x.subarray(512 * dim), dim, 3, 15, 0.1);
    expect([...whole.subarray(512)]).toEqual([...tail]);
  });

  it('handles an empty test set and leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    expect(knnClassify(TRAIN, LABELS, f32([]), 2, 2, 3, 0.1).length).toBe(0);
    const train = clusters(50, 4, 2, 5);
    knnClassify(train.x, train.y, clusters(300, 4, 2, 6).x, 4, 2, 5, 0.1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects bad labels, shapes and parameters', () => {
    expect(() => knnClassify(TRAIN, i32([0, 1, 2]), QUERY, 2, 2, 3, 0.1)).toThrow(/outside \[0, 2\)/);
    expect(() => knnClassify(TRAIN, i32([0, -1, 1]), QUERY, 2, 2, 3, 0.1)).toThrow(RangeError);
    expect(() => knnClassify(TRAIN, i32([0, 1]), QUERY, 2, 2, 3, 0.1)).toThrow(/labels/);
    expect(() => knnClassify(TRAIN, LABELS, f32([1, 0, 0]), 2, 2, 3, 0.1)).toThrow(/multiple of dim/);
    expect(() => knnClassify(TRAIN, LABELS, QUERY, 0, 2, 3, 0.1)).toThrow(RangeError);
    expect(() => knnClassify(f32([]), i32([]), QUERY, 2, 2, 3, 0.1)).toThrow(/at least one/);
    expect(() => knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, 0)).toThrow(/temperature/);
    expect(() => knnClassify(TRAIN, LABELS, QUERY, 2, 2, 3, Number.NaN)).toThrow(/temperature/);
  });
});
