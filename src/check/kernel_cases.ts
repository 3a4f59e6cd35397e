/**
 * Every native kernel of the GPU engines against a reference backend: the ops simtrip's models,
 * losses, optimiser and evaluation call, on random inputs with the models' shapes, forward and (for
 * differentiable ops) the gradient of sum(output * r) with a random r, so each kernel's gradient
 * kernels run too. `small` shapes keep the host-emulated build fast in CI; `full` shapes are the
 * models' own, for the GPU.
 */
import { tf } from '../engine/tf.js';
import { SGD_UPDATE, SGD_UPDATE_GATED, canRunKernel, type SgdUpdateAttrs } from '../engine/custom_kernels.js';
import { batchNormTrain } from '../ops/batch_norm.js';
import { roundToHalf } from '../ops/fp16_round.js';
import { gradsAreFinite } from '../optim/loss_scale.js';
import { groupNorm } from '../ops/group_norm.js';
import { standardizeWeight } from '../ops/weight_standardization.js';
import { Rng } from '../util/rng.js';

export type Scale = 'small' | 'full';

type Fill = 'normal' | 'positive' | 'ties' | 'specials' | { index: number } | 'bool';

export interface InputSpec {
  shape: number[];
  dtype?: 'float32' | 'int32' | 'bool';
  fill?: Fill;
}

export interface KernelCase {
  name: string;
  inputs: InputSpec[];
  op: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
  /** Also compare d sum(out * r) / d input for every float32 input. */
  grad?: boolean;
  /** Relative error allowed (integers and booleans must match exactly); default 1e-5. */
  tolerance?: number;
}

function values(rng: Rng, spec: InputSpec): Float32Array | Int32Array | Uint8Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const fill = spec.fill ?? (spec.dtype === 'bool' ? 'bool' : 'normal');
  if (typeof fill === 'object') return Int32Array.from({ length: n }, () => Math.floor(rng.next() * fill.index));
  if (fill === 'bool') return Uint8Array.from({ length: n }, () => (rng.next() < 0.5 ? 1 : 0));
  if (spec.dtype === 'int32') return Int32Array.from({ length: n }, () => Math.floor(rng.next() * 21) - 10);
  switch (fill) {
    case 'positive':
      return Float32Array.from({ length: n }, () => 0.1 + 2 * rng.next());
    case 'ties':
      // ReLU-like activations: many exact zeros and repeated maxima in every pooling window.
      return Float32Array.from({ length: n }, () => Math.max(0, Math.round(rng.normal() * 2) / 2));
    case 'specials': {
      const specials = [0, -0, Infinity, -Infinity, NaN, 1e-40, 65504, 65520];
      return Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? specials[(i / 7) % specials.length]! : rng.normal() * 100));
    }
    default:
      return Float32Array.from({ length: n }, () => rng.normal());
  }
}

export function makeInputs(c: KernelCase): Array<Float32Array | Int32Array | Uint8Array> {
  const rng = new Rng(`kernel-case ${c.name}`);
  return c.inputs.map((spec) => values(rng, spec));
}

/** The shapes a scale works at: batch, spatial side, channels. */
function dims(scale: Scale) {
  return scale === 'full' ? { n: 32, hw: 32, c: 64, rows: 512, d: 2048, big: 56 } : { n: 2, hw: 8, c: 8, rows: 12, d: 32, big: 12 };
}

function sgdUpdate(w: tf.Tensor, g: tf.Tensor, buf?: tf.Tensor): tf.Tensor[] {
  const attrs: SgdUpdateAttrs = { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, first: !buf };
  return tf.engine().runKernel(SGD_UPDATE, buf ? { w, g, buf } : { w, g }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
}

/**
 * The gated update where the backend has it (the engines that decide on the device), else what it must
 * equal: the update where the gate is 1, the weights and buffer unchanged (zeros on a first step) else.
 */
function gatedSgdUpdate(w: tf.Tensor, g: tf.Tensor, buf: tf.Tensor | undefined, apply: boolean): tf.Tensor[] {
  const gate = tf.scalar(apply ? 1 : 0);
  if (canRunKernel(SGD_UPDATE_GATED)) {
    const attrs: SgdUpdateAttrs = { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, first: !buf };
    return tf.engine().runKernel(SGD_UPDATE_GATED, buf ? { w, g, buf, gate } : { w, g, gate }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  }
  return apply ? sgdUpdate(w, g, buf) : [tf.clone(w), buf ? tf.clone(buf) : tf.zerosLike(w)];
}

/** The loss scaler's check (the native kernel where registered, composed ops elsewhere) as a tensor. */
function allFinite(xs: tf.Tensor[]): tf.Tensor {
  return tf.scalar(gradsAreFinite(xs) ? 1 : 0, 'int32');
}

export function kernelCases(scale: Scale): KernelCase[] {
  const { n, hw, c, rows, d, big } = dims(scale);
  const nhwc = [n, hw, hw, c];
  const conv = (k: number, stride: number, pad: number, cin: number, cout: number, side = hw): KernelCase => ({
    name: `conv ${k}x${k}/${stride} pad ${pad} [${n},${side},${side},${cin}] -> ${cout}`,
    inputs: [{ shape: [n, side, side, cin] }, { shape: [k, k, cin, cout] }],
    op: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, [[0, 0], [pad, pad], [pad, pad], [0, 0]]),
    grad: true,
    tolerance: 1e-5,
  });
  const cases: KernelCase[] = [
    // Convolutions as the ResNets use them, each with both gradients.
    conv(3, 1, 1, c, c),
    conv(3, 2, 1, c, 2 * c),
    conv(1, 2, 0, c, 2 * c),
    conv(1, 1, 0, 4 * c, c),
    conv(7, 2, 3, 3, c, big),
    conv(3, 1, 1, 3, c),
    {
      name: "conv 3x3/2 'same' (asymmetric padding)",
      inputs: [{ shape: nhwc }, { shape: [3, 3, c, c] }],
      op: (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'),
      grad: true,
    },
    {
      name: 'fused conv + bias + relu',
      inputs: [{ shape: nhwc }, { shape: [3, 3, c, c] }, { shape: [c] }],
      op: (x, w, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad: 'same', bias: b, activation: 'relu' }),
    },
    // Pooling: ties in every window decide where the gradient goes.
    {
      name: 'max-pool 3x3/2 pad 1 (ResNet stem), ties',
      inputs: [{ shape: [n, big, big, c], fill: 'ties' }],
      op: (x) => tf.maxPool(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], -Infinity) as tf.Tensor4D, 3, 2, 'valid'),
      grad: true,
    },
    {
      name: "max-pool 3x3/2 'same'",
      inputs: [{ shape: [n, big, big, c], fill: 'ties' }],
      op: (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same'),
      grad: true,
    },
    // Matrix products of the projector, predictor, probe and kNN.
    {
      name: `matmul [${rows},${d}] x [${d},${d / 4}]`,
      inputs: [{ shape: [rows, d] }, { shape: [d, d / 4] }],
      op: (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
      grad: true,
    },
    {
      name: 'matmul with transposes, batched',
      inputs: [{ shape: [3, 17, 9] }, { shape: [3, 13, 17] }],
      op: (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, true, true),
      grad: true,
    },
    {
      // tfjs' BatchMatMul gradient does not reduce a broadcast batch: forward only.
      name: 'matmul batched with broadcast',
      inputs: [{ shape: [3, 9, 17] }, { shape: [1, 13, 17] }],
      op: (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, false, true),
    },
    {
      name: 'fused matmul + bias + relu',
      inputs: [{ shape: [rows, d] }, { shape: [d, 10] }, { shape: [10] }],
      op: (a, b, bias) => tf.fused.matMul({ a: a as tf.Tensor2D, b: b as tf.Tensor2D, bias, activation: 'relu' }),
    },
    // Normalisation.
    {
      name: `batch norm (training) NHWC [${nhwc}]`,
      inputs: [{ shape: nhwc }, { shape: [c] }, { shape: [c] }],
      op: (x, g, b) => {
        const r = batchNormTrain(tf.add(tf.mul(x, 3), 1000), g, b);
        return [r.y, r.mean, r.variance];
      },
      grad: true,
      tolerance: 1e-4,
    },
    {
      name: `batch norm (training) projector [${rows},${d}]`,
      inputs: [{ shape: [rows, d] }, { shape: [d] }, { shape: [d] }],
      op: (x, g, b) => batchNormTrain(x, g, b).y,
      grad: true,
    },
    {
      name: 'batch norm (inference)',
      inputs: [{ shape: nhwc }, { shape: [c] }, { shape: [c], fill: 'positive' }, { shape: [c] }, { shape: [c] }],
      op: (x, m, v, b, g) => tf.batchNorm(x, m, v, b, g, 1e-5),
      grad: true,
    },
    {
      name: 'group norm (32 groups)',
      inputs: [{ shape: [n, hw / 2, hw / 2, 64] }, { shape: [64] }, { shape: [64] }],
      op: (x, g, b) => groupNorm(x as tf.Tensor4D, g, b, 32),
      grad: true,
      tolerance: 1e-4,
    },
    {
      name: 'weight standardisation',
      inputs: [{ shape: [3, 3, c, c] }],
      op: (w) => standardizeWeight(w as tf.Tensor4D),
      grad: true,
      tolerance: 1e-4,
    },
    // Element-wise ops of the blocks, the losses and the optimiser, with their broadcasts.
    { name: 'add (residual)', inputs: [{ shape: nhwc }, { shape: nhwc }], op: (a, b) => tf.add(a, b), grad: true },
    { name: 'add per channel', inputs: [{ shape: nhwc }, { shape: [c] }], op: (a, b) => tf.add(a, b), grad: true },
    { name: 'sub [N,1] from [N,D]', inputs: [{ shape: [rows, d] }, { shape: [rows, 1] }], op: (a, b) => tf.sub(a, b), grad: true },
    { name: 'mul by scalar', inputs: [{ shape: nhwc }, { shape: [] }], op: (a, b) => tf.mul(a, b), grad: true },
    { name: 'mul outer broadcast', inputs: [{ shape: [rows, 1] }, { shape: [1, d] }], op: (a, b) => tf.mul(a, b), grad: true },
    { name: 'div', inputs: [{ shape: [rows, d] }, { shape: [rows, d], fill: 'positive' }], op: (a, b) => tf.div(a, b), grad: true },
    // tfjs' Minimum and SquaredDifference gradients do not reduce broadcasts: same shapes here.
    { name: 'maximum, minimum', inputs: [{ shape: [rows, d] }, { shape: [rows, d] }], op: (a, b) => [tf.maximum(a, b), tf.minimum(a, b)], grad: true },
    { name: 'maximum with a constant (the norm clamp)', inputs: [{ shape: [rows, d] }], op: (a) => tf.maximum(a, 0.1), grad: true },
    { name: 'pow', inputs: [{ shape: [rows, d], fill: 'positive' }, { shape: [] }], op: (a, b) => tf.pow(a, b), grad: true },
    { name: 'squared difference', inputs: [{ shape: [rows, d] }, { shape: [rows, d] }], op: (a, b) => tf.squaredDifference(a, b), grad: true },
    { name: 'mod, atan2, prelu', inputs: [{ shape: [rows, d] }, { shape: [rows, d], fill: 'positive' }], op: (a, b) => [tf.mod(a, b), tf.atan2(a, b), tf.prelu(a, tf.mul(b, 0.1))] },
    { name: 'relu', inputs: [{ shape: nhwc }], op: (x) => tf.relu(x), grad: true },
    { name: 'relu6, leaky relu, elu', inputs: [{ shape: nhwc }], op: (x) => [tf.relu6(tf.mul(x, 4)), tf.leakyRelu(x, 0.1), tf.elu(x)], grad: true },
    { name: 'abs, neg, square, sign', inputs: [{ shape: [rows, d] }], op: (x) => [tf.abs(x), tf.neg(x), tf.square(x), tf.sign(x)], grad: true },
    { name: 'sqrt, rsqrt, log, reciprocal', inputs: [{ shape: [rows, d], fill: 'positive' }], op: (x) => [tf.sqrt(x), tf.rsqrt(x), tf.log(x), tf.reciprocal(x)], grad: true },
    { name: 'exp, sigmoid, tanh, softplus', inputs: [{ shape: [rows, d] }], op: (x) => [tf.exp(x), tf.sigmoid(x), tf.tanh(x), tf.softplus(x)], grad: true },
    { name: 'expm1, log1p, erf, sin, cos', inputs: [{ shape: [rows, d], fill: 'positive' }], op: (x) => [tf.expm1(x), tf.log1p(x), tf.erf(x), tf.sin(x), tf.cos(x)], grad: true, tolerance: 2e-5 },
    { name: 'floor, ceil, round, clip', inputs: [{ shape: [rows, d] }], op: (x) => [tf.floor(tf.mul(x, 3)), tf.ceil(tf.mul(x, 3)), tf.round(tf.mul(x, 2)), tf.clipByValue(x, -0.5, 0.7)] },
    { name: 'is nan / inf / finite', inputs: [{ shape: [rows, d], fill: 'specials' }], op: (x) => [tf.isNaN(x), tf.isInf(x), tf.isFinite(x)] },
    {
      name: 'comparisons and logic',
      inputs: [{ shape: [rows, d] }, { shape: [d] }],
      op: (a, b) => {
        const gt = tf.greater(a, b);
        const le = tf.lessEqual(a, b);
        return [tf.equal(a, b), tf.notEqual(a, b), gt, tf.greaterEqual(a, b), tf.less(a, b), le, tf.logicalAnd(gt, le), tf.logicalOr(gt, le), tf.logicalNot(gt)];
      },
    },
    { name: 'select', inputs: [{ shape: [rows, d], dtype: 'bool' }, { shape: [rows, d] }, { shape: [rows, d] }], op: (cnd, a, b) => tf.where(cnd as tf.Tensor<tf.Rank>, a, b), grad: true },
    { name: 'cast float <-> int <-> bool', inputs: [{ shape: [rows, d] }], op: (x) => [tf.cast(tf.mul(x, 5), 'int32'), tf.cast(tf.cast(tf.mul(x, 5), 'int32'), 'float32'), tf.cast(x, 'bool')] },
    { name: 'integer arithmetic', inputs: [{ shape: [rows, 8], dtype: 'int32' }, { shape: [8], dtype: 'int32' }], op: (a, b) => [tf.add(a, b), tf.mul(a, b), tf.floorDiv(a, tf.add(tf.abs(b), 1)), tf.maximum(a, b)] },
    { name: 'fill, zeros-like, ones-like', inputs: [{ shape: [rows, d] }], op: (x) => [tf.fill([rows, 3], 2.5), tf.zerosLike(x), tf.onesLike(x)] },
    { name: 'add-n (gradient accumulation)', inputs: [{ shape: nhwc }, { shape: nhwc }, { shape: nhwc }], op: (a, b, e) => tf.addN([a, b, e]), grad: true },
    // Reductions: batch statistics, global pooling, the losses' row sums, kNN.
    { name: 'sum over rows of [rows*hw*hw, c]', inputs: [{ shape: [n * hw * hw, c] }], op: (x) => tf.sum(x, 0), grad: true, tolerance: 1e-5 },
    { name: 'mean over H, W (global average pool)', inputs: [{ shape: nhwc }], op: (x) => tf.mean(x, [1, 2]), grad: true },
    { name: 'sum over the last axis, keepDims', inputs: [{ shape: [rows, d] }], op: (x) => tf.sum(x, -1, true), grad: true },
    { name: 'mean of everything', inputs: [{ shape: [rows, d] }], op: (x) => tf.mean(x), grad: true },
    { name: 'max, min', inputs: [{ shape: [rows, 16] }], op: (x) => [tf.max(x, 1), tf.min(x, 0)], grad: true },
    { name: 'prod', inputs: [{ shape: [rows, 16] }], op: (x) => tf.prod(tf.add(tf.mul(x, 0.1), 1), 1) },
    { name: 'all, any', inputs: [{ shape: [rows, d], dtype: 'bool' }], op: (x) => [tf.all(x, 1), tf.any(x, 0)] },
    { name: 'argmax, argmin', inputs: [{ shape: [rows, 10] }], op: (x) => [tf.argMax(x, 1), tf.argMin(x, 0)] },
    { name: 'softmax, log-softmax', inputs: [{ shape: [rows, 10] }], op: (x) => [tf.softmax(x), tf.logSoftmax(x)], grad: true },
    { name: 'top-k (kNN)', inputs: [{ shape: [rows, 4 * d] }], op: (x) => { const r = tf.topk(x, Math.min(200, 4 * d)); return [r.values, r.indices]; } },
    // Layout.
    { name: 'transpose NHWC -> NCHW', inputs: [{ shape: nhwc }], op: (x) => tf.transpose(x, [0, 3, 1, 2]), grad: true },
    { name: 'pad (BiT root)', inputs: [{ shape: nhwc }], op: (x) => tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), grad: true },
    { name: 'slice', inputs: [{ shape: nhwc }], op: (x) => tf.slice(x, [0, 1, 1, 0], [n, hw - 2, hw - 2, c]), grad: true },
    { name: 'strided slice, mirror pad', inputs: [{ shape: nhwc }], op: (x) => [tf.stridedSlice(x, [0, 0, 0, 0], nhwc, [1, 2, 2, 1]), tf.mirrorPad(x, [[0, 0], [2, 2], [1, 1], [0, 0]], 'reflect')] },
    {
      name: 'average pool 2x2/2',
      inputs: [{ shape: nhwc }],
      op: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid'),
      grad: true,
    },
    { name: 'concat, stack, unstack, split', inputs: [{ shape: [rows, d] }, { shape: [rows, d] }], op: (a, b) => [tf.concat([a, b], 1), tf.stack([a, b]), ...tf.unstack(tf.slice(a, [0, 0], [2, d])), ...tf.split(b, 2, 1)], grad: true },
    { name: 'tile, reverse, broadcast-to', inputs: [{ shape: [rows, 8] }], op: (x) => [tf.tile(x, [2, 3]), tf.reverse(x, 1), tf.broadcastTo(tf.slice(x, [0, 0], [1, 8]), [rows, 8])], grad: true },
    { name: 'gather, one-hot', inputs: [{ shape: [rows, d] }, { shape: [7], dtype: 'int32', fill: { index: rows } }], op: (x, i) => [tf.gather(x, i), tf.oneHot(i as tf.Tensor1D, rows)], grad: true },
    // Mixed precision and the optimiser.
    {
      name: 'all finite (loss scaling)',
      inputs: [{ shape: [rows, d] }, { shape: [rows, d], fill: 'specials' }],
      op: (a, b) => [allFinite([a]), allFinite([a, b])],
    },
    { name: 'round to half (specials)', inputs: [{ shape: [rows, d], fill: 'specials' }], op: (x) => roundToHalf(x), tolerance: 0 },
    { name: 'SGD update, first and later step', inputs: [{ shape: [rows, d] }, { shape: [rows, d] }, { shape: [rows, d] }], op: (w, g, b) => [...sgdUpdate(w, g), ...sgdUpdate(w, g, b)], tolerance: 0 },
    {
      name: 'SGD update gated on the device, applied and dropped',
      inputs: [{ shape: [rows, d] }, { shape: [rows, d] }, { shape: [rows, d] }],
      op: (w, g, b) => [...gatedSgdUpdate(w, g, b, true), ...gatedSgdUpdate(w, g, b, false), ...gatedSgdUpdate(w, g, undefined, false)],
      tolerance: 0,
    },
  ];
  return cases;
}
