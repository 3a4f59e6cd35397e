/**
 * Weighted kNN classifier on frozen features: the monitor of InstDisc / SimSiam (k = 200, t = 0.1).
 * Cosine similarity to every training item, the k most similar vote with weight exp(sim / t).
 */
import { tf } from '../engine/tf.js';

/** Test rows per similarity block: bounds memory at CHUNK x nTrain floats (256 x 50000 = 51 MB). */
const CHUNK = 256;

function checkShape(name: string, x: Float32Array, dim: number): number {
  if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`feature dim must be a positive integer, got ${dim}`);
  if (x.length % dim !== 0) throw new RangeError(`${name} has ${x.length} values, not a multiple of dim ${dim}`);
  return x.length / dim;
}

/** Rows scaled to unit length; the epsilon keeps an all-zero feature at zero instead of NaN. */
function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)));
}

/** Adds each neighbour's weight to its class and returns the heaviest class (lowest index on ties). */
function vote(
  weights: Float32Array,
  neighbours: Int32Array,
  trainLabels: Int32Array,
  k: number,
  numClasses: number,
  out: Int32Array,
  offset: number,
): void {
  const scores = new Float64Array(numClasses);
  const rows = weights.length / k;
  for (let row = 0; row < rows; row++) {
    scores.fill(0);
    for (let j = row * k; j < (row + 1) * k; j++) scores[trainLabels[neighbours[j]!]!]! += weights[j]!;
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (scores[c]! > scores[best]!) best = c;
    out[offset + row] = best;
  }
}

export function knnClassify(
  train: Float32Array,
  trainLabels: Int32Array,
  test: Float32Array,
  dim: number,
  numClasses: number,
  k: number,
  t: number,
): Int32Array {
  const nTrain = checkShape('train', train, dim);
  const nTest = checkShape('test', test, dim);
  if (trainLabels.length !== nTrain) throw new RangeError(`${nTrain} train rows but ${trainLabels.length} labels`);
  if (nTrain === 0) throw new RangeError('kNN needs at least one training item');
  for (const label of trainLabels) {
    if (label < 0 || label >= numClasses) throw new RangeError(`train label ${label} outside [0, ${numClasses})`);
  }
  if (!(t > 0)) throw new RangeError(`kNN temperature must be positive, got ${t}`);
  const kk = Math.min(Math.max(1, Math.floor(k)), nTrain);

  const predictions = new Int32Array(nTest);
  const bank = tf.tidy(() => l2Normalize(tf.tensor2d(train, [nTrain, dim])));
  try {
    for (let start = 0; start < nTest; start += CHUNK) {
      const rows = Math.min(CHUNK, nTest - start);
      const [weights, neighbours] = tf.tidy(() => {
        const queries = l2Normalize(tf.tensor2d(test.subarray(start * dim, (start + rows) * dim), [rows, dim]));
        const { values, indices } = tf.topk(tf.matMul(queries, bank, false, true), kk);
        // Shifting by the row's best similarity leaves the vote unchanged (a common factor per row) and
        // keeps exp finite for small t: exp(1 / 0.01) would overflow float32.
        const w = tf.exp(tf.div(tf.sub(values, tf.max(values, 1, true)), t));
        return [w.dataSync() as Float32Array, indices.dataSync() as Int32Array];
      });
      vote(weights, neighbours, trainLabels, kk, numClasses, predictions, start);
    }
  } finally {
    bank.dispose();
  }
  return predictions;
}
