/**
 * Linear probe on frozen features: one linear layer, cross-entropy, SGD with momentum and a cosine lr
 * stepped per iteration (the SimSiam linear-eval protocol, on pre-extracted features).
 *
 * The whole loop runs as tfjs ops on tensors that stay on the backend (features are uploaded once and
 * batches gathered there), so a native engine (tfjs-node, GPU) does the arithmetic and the only
 * per-epoch read-back is the mean loss.
 */
import { tf } from '../engine/tf.js';
import type { LinearEvalConfig } from '../config/schema.js';
import { Rng } from '../util/rng.js';
import { classificationMetrics, type ClassificationMetrics } from './metrics.js';
import { stratifiedSubset } from './label_fraction.js';

/** Floor on a feature's std: a constant feature is centred to 0 rather than divided by 0. */
const STD_EPS = 1e-6;
/** Rows per inference block, to bound memory when scoring large test sets. */
const PREDICT_CHUNK = 4096;

export interface FeatureStats {
  mean: Float32Array;
  std: Float32Array;
}

export interface LinearProbe {
  readonly dim: number;
  readonly numClasses: number;
  /** [dim x numClasses] row-major, acting on standardised features when `normalize` was on. */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
  /** Train-set statistics the inputs are standardised with; absent when normalize is off. */
  readonly mean?: Float32Array;
  readonly std?: Float32Array;
  /** Raw scores, [n x numClasses] row-major. */
  logits(x: Float32Array): Float32Array;
  predict(x: Float32Array): Int32Array;
}

export interface EpochInfo {
  /** 1-based. */
  epoch: number;
  epochs: number;
  /** Mean training cross-entropy over the epoch (before weight decay). */
  loss: number;
  /** lr of the epoch's last iteration. */
  lr: number;
}

export interface ProbeProtocol {
  optimizer: 'sgd';
  momentum: number;
  /** Actual peak lr: base_lr x batch_size / 256. */
  lr: number;
  base_lr: number;
  epochs: number;
  batch_size: number;
  weight_decay: number;
  schedule: 'cosine';
  normalize: boolean;
  label_fraction: number;
  train_samples: number;
  test_samples: number;
}

export interface LinearProbeResult {
  metrics: ClassificationMetrics;
  protocol: ProbeProtocol;
}

export interface LinearProbeInput {
  trainX: Float32Array;
  trainY: Int32Array;
  testX: Float32Array;
  testY: Int32Array;
  dim: number;
  classNames: readonly string[];
  cfg: LinearEvalConfig;
  seed: number;
  onEpoch?: (info: EpochInfo) => void;
  kernel?: ProbeKernel;
}

function rowCount(name: string, x: Float32Array, dim: number): number {
  if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`feature dim must be a positive integer, got ${dim}`);
  if (x.length % dim !== 0) throw new RangeError(`${name} has ${x.length} values, not a multiple of dim ${dim}`);
  return x.length / dim;
}

function checkLabels(name: string, y: Int32Array, n: number, numClasses: number): void {
  if (y.length !== n) throw new RangeError(`${name}: ${n} feature rows but ${y.length} labels`);
  for (const label of y) {
    if (label < 0 || label >= numClasses) throw new RangeError(`${name}: label ${label} outside [0, ${numClasses})`);
  }
}

/** Per-feature mean and (biased) std, accumulated in float64 so large N does not lose precision. */
export function featureStats(x: Float32Array, dim: number): FeatureStats {
  const n = rowCount('features', x, dim);
  const sum = new Float64Array(dim);
  const sumSq = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) sum[j]! += x[row + j]!;
  }
  const mean = sum.map((s) => s / Math.max(n, 1));
  for (let i = 0; i < n; i++) {
    const row = i * dim;
    for (let j = 0; j < dim; j++) {
      const d = x[row + j]! - mean[j]!;
      sumSq[j]! += d * d;
    }
  }
  const std = sumSq.map((s) => Math.max(Math.sqrt(s / Math.max(n, 1)), STD_EPS));
  return { mean: Float32Array.from(mean), std: Float32Array.from(std) };
}

/** (x - mean) / std per feature, into a new array. */
function standardize(x: Float32Array, stats: FeatureStats): Float32Array {
  const dim = stats.mean.length;
  const out = new Float32Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const j = k % dim;
    out[k] = (x[k]! - stats.mean[j]!) / stats.std[j]!;
  }
  return out;
}

/**
 * A probe from its parameters: weights [dim x numClasses] row-major and bias, acting on features
 * standardised with `stats` when given (a fitted probe, or one read back from its saved files).
 */
export function makeLinearProbe(dim: number, numClasses: number, weights: Float32Array, bias: Float32Array, stats?: FeatureStats): LinearProbe {
  const logits = (x: Float32Array): Float32Array => {
    const n = rowCount('x', x, dim);
    const out = new Float32Array(n * numClasses);
    for (let start = 0; start < n; start += PREDICT_CHUNK) {
      const rows = Math.min(PREDICT_CHUNK, n - start);
      const raw = x.subarray(start * dim, (start + rows) * dim);
      const block = tf.tidy(() => {
        const xb = tf.tensor2d(stats ? standardize(raw, stats) : raw, [rows, dim]);
        return tf.add(tf.matMul(xb, tf.tensor2d(weights, [dim, numClasses])), tf.tensor1d(bias)).dataSync();
      });
      out.set(block, start * numClasses);
    }
    return out;
  };
  const predict = (x: Float32Array): Int32Array => argmaxRows(logits(x), numClasses);
  return { dim, numClasses, weights, bias, mean: stats?.mean, std: stats?.std, logits, predict };
}

/** Index of each row's largest score (the lowest index on ties), for [n x numClasses] scores. */
export function argmaxRows(scores: ArrayLike<number>, numClasses: number): Int32Array {
  const pred = new Int32Array(scores.length / numClasses);
  for (let i = 0; i < pred.length; i++) {
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (scores[i * numClasses + c]! > scores[i * numClasses + best]!) best = c;
    pred[i] = best;
  }
  return pred;
}

/** Row-wise softmax of [n x numClasses] logits, in float64 (max-shifted so exp cannot overflow). */
export function softmaxRows(logits: Float32Array, numClasses: number): Float64Array {
  const out = new Float64Array(logits.length);
  for (let row = 0; row < logits.length; row += numClasses) {
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, logits[row + c]!);
    let sum = 0;
    for (let c = 0; c < numClasses; c++) sum += out[row + c] = Math.exp(logits[row + c]! - max);
    for (let c = 0; c < numClasses; c++) out[row + c]! /= sum;
  }
  return out;
}

/** lr = base_lr x batch / 256, the linear scaling rule of the SimSiam protocol. */
export function probeLr(cfg: Pick<LinearEvalConfig, 'base_lr' | 'batch_size'>): number {
  return (cfg.base_lr * cfg.batch_size) / 256;
}

/** Half-cosine from lr0 to 0 over `total` iterations. */
export function cosineLr(lr0: number, iteration: number, total: number): number {
  return 0.5 * lr0 * (1 + Math.cos((Math.PI * iteration) / Math.max(total, 1)));
}

export type ProbeKernel = 'auto' | 'tfjs' | 'js';

export interface TrainOptions {
  onEpoch?: (info: EpochInfo) => void;
  /**
   * 'tfjs' runs the step as tfjs ops; 'js' as plain loops. 'auto' picks 'js' only on the pure-JS cpu
   * backend, whose generic matMul runs at ~0.3 GFLOP/s (30 epochs of 10000 x 512 took 48 s there, the
   * loops take a few seconds); every other backend gets the tfjs ops.
   */
  kernel?: ProbeKernel;
  /**
   * Called after every epoch with the probe as it stands then (its own copy of the parameters), so a
   * caller can score each epoch on a validation set and keep the best one.
   */
  onSnapshot?: (epoch: number, probe: LinearProbe) => void;
}

/** What a step needs besides the batch: the optimiser's constants. */
interface SgdSettings {
  momentum: number;
  weightDecay: number;
}

/**
 * One way of running SGD steps on softmax regression over standardised features held by the trainer.
 * Both implementations follow PyTorch's SGD: v = m v + (g + wd w); w -= lr v, with the bias not decayed.
 */
interface ProbeTrainer {
  /** One step on the rows `idx`. */
  step(idx: Int32Array, lr: number): void;
  /** Summed cross-entropy of the items stepped on since the last call. */
  takeLossSum(): number;
  /** Weights [dim x numClasses] row-major and bias. */
  parameters(): { weights: Float32Array; bias: Float32Array };
  dispose(): void;
}

/** tidy frees the initial value, which the variable copies rather than adopts. */
function zerosVariable(shape: number[], trainable: boolean): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zeros(shape), trainable));
}

/** Data and parameters live on the tfjs backend; batches are gathered there. */
function tfjsTrainer(x: Float32Array, y: Int32Array, dim: number, numClasses: number, sgd: SgdSettings): ProbeTrainer {
  const n = y.length;
  const xAll = tf.tensor2d(x, [n, dim]);
  const yAll = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), numClasses), 'float32'));
  const w = zerosVariable([dim, numClasses], true);
  const b = zerosVariable([numClasses], true);
  const vW = zerosVariable([dim, numClasses], false);
  const vB = zerosVariable([numClasses], false);
  // Accumulated on the backend so a GPU is not synchronised every step.
  const lossSum = zerosVariable([], false);
  return {
    step(idx, lr) {
      tf.tidy(() => {
        const rows = tf.tensor1d(idx, 'int32');
        const xb = tf.gather(xAll, rows);
        const yb = tf.gather(yAll, rows);
        const { value, grads } = tf.variableGrads(() => {
          const logits = tf.add(tf.matMul(xb, w), b);
          return tf.div(tf.neg(tf.sum(tf.mul(yb, tf.logSoftmax(logits)))), idx.length) as tf.Scalar;
        }, [w, b]);
        const gW = sgd.weightDecay > 0 ? tf.add(grads[w.name]!, tf.mul(w, sgd.weightDecay)) : grads[w.name]!;
        vW.assign(tf.add(tf.mul(vW, sgd.momentum), gW));
        vB.assign(tf.add(tf.mul(vB, sgd.momentum), grads[b.name]!));
        w.assign(tf.sub(w, tf.mul(vW, lr)));
        b.assign(tf.sub(b, tf.mul(vB, lr)));
        lossSum.assign(tf.add(lossSum, tf.mul(value, idx.length)));
      });
    },
    takeLossSum() {
      const total = lossSum.dataSync()[0]!;
      tf.tidy(() => lossSum.assign(tf.zerosLike(lossSum)));
      return total;
    },
    // Copies: some backends hand out their own storage, and a snapshot must not change with later steps.
    parameters: () => ({ weights: Float32Array.from(w.dataSync()), bias: Float32Array.from(b.dataSync()) }),
    dispose: () => tf.dispose([xAll, yAll, w, b, vW, vB, lossSum]),
  };
}

/**
 * out[c] = w_c . x[row : row + dim] for each class row c of w. Two classes per pass, so each feature
 * load serves two products: about 30 % faster in V8 than one class at a time.
 */
function classDots(w: Float64Array, x: Float32Array, row: number, dim: number, numClasses: number, out: Float64Array): void {
  let c = 0;
  for (; c + 1 < numClasses; c += 2) {
    const w0 = c * dim;
    const w1 = w0 + dim;
    let z0 = 0;
    let z1 = 0;
    for (let j = 0; j < dim; j++) {
      const v = x[row + j]!;
      z0 += v * w[w0 + j]!;
      z1 += v * w[w1 + j]!;
    }
    out[c] = z0;
    out[c + 1] = z1;
  }
  if (c < numClasses) {
    const w0 = c * dim;
    let z0 = 0;
    for (let j = 0; j < dim; j++) z0 += x[row + j]! * w[w0 + j]!;
    out[c] = z0;
  }
}

/** g_c += coef[c] * x[row : row + dim] for each class row c of g, two classes per pass (see classDots). */
function addOuter(g: Float64Array, x: Float32Array, row: number, dim: number, numClasses: number, coef: Float64Array): void {
  let c = 0;
  for (; c + 1 < numClasses; c += 2) {
    const g0 = c * dim;
    const g1 = g0 + dim;
    const a0 = coef[c]!;
    const a1 = coef[c + 1]!;
    for (let j = 0; j < dim; j++) {
      const v = x[row + j]!;
      g[g0 + j]! += a0 * v;
      g[g1 + j]! += a1 * v;
    }
  }
  if (c < numClasses) {
    const g0 = c * dim;
    const a0 = coef[c]!;
    for (let j = 0; j < dim; j++) g[g0 + j]! += a0 * x[row + j]!;
  }
}

/**
 * The same step as plain loops. Weights are kept class-major ([numClasses x dim], float64) so both the
 * forward dot products and the gradient updates run along contiguous rows of length dim.
 */
function jsTrainer(x: Float32Array, y: Int32Array, dim: number, numClasses: number, sgd: SgdSettings): ProbeTrainer {
  const w = new Float64Array(numClasses * dim);
  const b = new Float64Array(numClasses);
  const vW = new Float64Array(numClasses * dim);
  const vB = new Float64Array(numClasses);
  const gW = new Float64Array(numClasses * dim);
  const gB = new Float64Array(numClasses);
  const p = new Float64Array(numClasses);
  let lossSum = 0;

  /** Softmax of row i into p; returns the item's cross-entropy. */
  const forward = (i: number): number => {
    const row = i * dim;
    classDots(w, x, row, dim, numClasses, p);
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) {
      p[c]! += b[c]!;
      if (p[c]! > max) max = p[c]!;
    }
    const target = p[y[i]!]!;
    let sum = 0;
    for (let c = 0; c < numClasses; c++) {
      p[c] = Math.exp(p[c]! - max);
      sum += p[c]!;
    }
    for (let c = 0; c < numClasses; c++) p[c]! /= sum;
    return Math.log(sum) + max - target;
  };

  const update = (lr: number): void => {
    for (let k = 0; k < w.length; k++) {
      vW[k] = sgd.momentum * vW[k]! + gW[k]! + sgd.weightDecay * w[k]!;
      w[k]! -= lr * vW[k]!;
    }
    for (let c = 0; c < numClasses; c++) {
      vB[c] = sgd.momentum * vB[c]! + gB[c]!;
      b[c]! -= lr * vB[c]!;
    }
  };

  return {
    step(idx, lr) {
      gW.fill(0);
      gB.fill(0);
      const scale = 1 / idx.length;
      for (const i of idx) {
        lossSum += forward(i);
        p[y[i]!]! -= 1;
        for (let c = 0; c < numClasses; c++) {
          p[c]! *= scale;
          gB[c]! += p[c]!;
        }
        addOuter(gW, x, i * dim, dim, numClasses, p);
      }
      update(lr);
    },
    takeLossSum() {
      const total = lossSum;
      lossSum = 0;
      return total;
    },
    parameters() {
      const weights = new Float32Array(dim * numClasses);
      for (let c = 0; c < numClasses; c++) for (let j = 0; j < dim; j++) weights[j * numClasses + c] = w[c * dim + j]!;
      return { weights, bias: Float32Array.from(b) };
    },
    dispose() {},
  };
}

function pickKernel(kernel: ProbeKernel): 'tfjs' | 'js' {
  if (kernel !== 'auto') return kernel;
  return tf.getBackend() === 'cpu' ? 'js' : 'tfjs';
}

/**
 * Trains a softmax-regression head. Weights start at zero (as BiT's head): the problem is convex, so
 * there is no symmetry to break, and a zero start makes the result depend on the seed only through
 * the batch order.
 */
export function trainLinearProbe(
  trainX: Float32Array,
  trainY: Int32Array,
  dim: number,
  numClasses: number,
  cfg: LinearEvalConfig,
  seed: number,
  options: TrainOptions = {},
): LinearProbe {
  const n = rowCount('trainX', trainX, dim);
  if (n === 0) throw new RangeError('linear probe needs at least one training item');
  checkLabels('trainY', trainY, n, numClasses);
  const stats = cfg.normalize ? featureStats(trainX, dim) : undefined;
  const x = stats ? standardize(trainX, stats) : trainX;
  const makeTrainer = pickKernel(options.kernel ?? 'auto') === 'js' ? jsTrainer : tfjsTrainer;
  const trainer = makeTrainer(x, trainY, dim, numClasses, { momentum: cfg.momentum, weightDecay: cfg.weight_decay });
  const batch = Math.min(cfg.batch_size, n);
  const totalIters = cfg.epochs * Math.ceil(n / batch);
  const lr0 = probeLr(cfg);
  try {
    let iter = 0;
    for (let epoch = 0; epoch < cfg.epochs; epoch++) {
      const order = new Rng(seed, 'probe', epoch).permutation(n);
      let lr = lr0;
      for (let start = 0; start < n; start += batch, iter++) {
        lr = cosineLr(lr0, iter, totalIters);
        trainer.step(order.subarray(start, Math.min(start + batch, n)), lr);
      }
      const loss = trainer.takeLossSum() / n;
      options.onEpoch?.({ epoch: epoch + 1, epochs: cfg.epochs, loss, lr });
      if (options.onSnapshot) {
        const { weights, bias } = trainer.parameters();
        options.onSnapshot(epoch + 1, makeLinearProbe(dim, numClasses, weights, bias, stats));
      }
    }
    const { weights, bias } = trainer.parameters();
    return makeLinearProbe(dim, numClasses, weights, bias, stats);
  } finally {
    trainer.dispose();
  }
}

/** Takes the rows `idx` of a [n x dim] matrix. */
export function takeRows(x: Float32Array, dim: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * dim);
  idx.forEach((row, i) => out.set(x.subarray(row * dim, (row + 1) * dim), i * dim));
  return out;
}

export function runLinearProbe(input: LinearProbeInput): LinearProbeResult {
  const { trainX, trainY, testX, testY, dim, classNames, cfg, seed, onEpoch } = input;
  const numClasses = classNames.length;
  const nTest = rowCount('testX', testX, dim);
  checkLabels('testY', testY, nTest, numClasses);
  rowCount('trainX', trainX, dim);
  const subset = stratifiedSubset(trainY, cfg.label_fraction, seed);
  const x = subset.length === trainY.length ? trainX : takeRows(trainX, dim, subset);
  const y = subset.length === trainY.length ? trainY : subset.map((i) => trainY[i]!);
  const probe = trainLinearProbe(x, y, dim, numClasses, cfg, seed, { onEpoch, kernel: input.kernel });
  return {
    metrics: classificationMetrics(testY, probe.predict(testX), classNames),
    protocol: probeProtocol(cfg, subset.length, nTest),
  };
}

/** The settings a probe ran with, as reports record them. */
export function probeProtocol(cfg: LinearEvalConfig, trainSamples: number, testSamples: number): ProbeProtocol {
  return {
    optimizer: 'sgd',
    momentum: cfg.momentum,
    lr: probeLr(cfg),
    base_lr: cfg.base_lr,
    epochs: cfg.epochs,
    batch_size: cfg.batch_size,
    weight_decay: cfg.weight_decay,
    schedule: 'cosine',
    normalize: cfg.normalize,
    label_fraction: cfg.label_fraction,
    train_samples: trainSamples,
    test_samples: testSamples,
  };
}

/** One probe per label fraction (e.g. 0.01, 0.1, 1), each on its own stratified subset. */
export function runLinearProbeFractions(input: LinearProbeInput, fractions: readonly number[]): LinearProbeResult[] {
  return fractions.map((label_fraction) => runLinearProbe({ ...input, cfg: { ...input.cfg, label_fraction } }));
}
