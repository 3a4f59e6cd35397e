/**
 * Every native kernel of the onednn backend against tfjs-backend-cpu on identical seeded inputs, then
 * a small conv net whose loss and gradients must agree on both backends.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { RELU_GRAD } from '../../src/ops/relu_grad.js';
import { outputArray } from '../../src/engine/onednn/kernels/common.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { broadcastLayout } from '../../src/engine/onednn/kernels/eltwise.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';
import { type ConvCase, conv } from './conv_cases.js';

const onednn = await loadOnednn();
if (!onednn.ok) {
  console.warn(`onednn tests skipped: ${onednn.reason} (${onednn.hint})`);
}

const TOLERANCE = 1e-5;

type Init = { shape: number[]; seed: string };

/** Seeded N(0, 1) values; the seed is a string so every input of every case differs. */
function randomValues(shape: readonly number[], seed: string): Float32Array {
  const rng = new Rng('onednn-test', seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal();
  return out;
}

/** Runs `fn` on fresh tensors built from `inputs` under the given backend and reads every output. */
async function runOn(backend: 'cpu' | 'onednn', inputs: Init[], fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  if (backend === 'cpu') await useCpuBackend();
  else await tf.setBackend('onednn');
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(randomValues(i.shape, i.seed), i.shape, 'float32'));
    const out = fn(...xs);
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
}

/**
 * Asserts that onednn and cpu agree within TOLERANCE on every output, and that `kernel` ran natively
 * at least `minNative` times (a silent fallback would otherwise make the comparison vacuous).
 */
async function expectSameOnBoth(
  inputs: Init[],
  fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[],
  native: { kernel: string; minNative?: number } | null,
): Promise<Float32Array[]> {
  const expected = await runOn('cpu', inputs, fn);
  const before = native ? nativeRuns.get(native.kernel) ?? 0 : 0;
  const actual = await runOn('onednn', inputs, fn);
  if (native) {
    const ran = (nativeRuns.get(native.kernel) ?? 0) - before;
    expect(ran, `${native.kernel} native runs`).toBeGreaterThanOrEqual(native.minNative ?? 1);
  }
  expect(actual.length).toBe(expected.length);
  actual.forEach((a, i) => {
    expect(a.length, `output ${i} length`).toBe(expected[i]!.length);
    expect(relativeError(a, expected[i]!), `output ${i} relative error`).toBeLessThan(TOLERANCE);
  });
  return actual;
}

const CONV_CASES: ConvCase[] = [
  { name: '3x3 same stride 1', x: [2, 9, 9, 3], f: [3, 3, 3, 5], strides: 1, pad: 'same' },
  { name: '3x3 valid stride 2, last row unused', x: [1, 8, 8, 4], f: [3, 3, 4, 6], strides: 2, pad: 'valid' },
  { name: '3x3 same stride 2 even input (asymmetric pad)', x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: '3x2 numeric pad, stride 2, odd sizes', x: [2, 7, 11, 3], f: [3, 2, 3, 4], strides: 2, pad: 1 },
  { name: 'strides [2,1] same, odd sizes', x: [2, 7, 11, 3], f: [3, 3, 3, 4], strides: [2, 1], pad: 'same' },
  { name: 'explicit asymmetric pad', x: [1, 10, 9, 2], f: [3, 3, 2, 3], strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '1x1 stride 2 (ResNet shortcut)', x: [3, 6, 6, 8], f: [1, 1, 8, 16], strides: 2, pad: 'valid' },
  { name: 'numeric pad with ceil rounding', x: [1, 8, 8, 2], f: [3, 3, 2, 3], strides: 2, pad: 1, rounding: 'ceil' },
  { name: '7x7 stride 2 pad 3 (ImageNet stem)', x: [1, 15, 15, 3], f: [7, 7, 3, 8], strides: 2, pad: 3 },
];

const DILATED_CASES: ConvCase[] = [
  { name: 'dilation 2 same', x: [1, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same', dilations: 2 },
  { name: 'dilation [2,3] valid, batch 2', x: [2, 11, 12, 2], f: [3, 2, 2, 5], strides: 1, pad: 'valid', dilations: [2, 3] },
];

function inputsOf(c: ConvCase, extra: Init[] = []): Init[] {
  return [{ shape: c.x, seed: `${c.name}/x` }, { shape: c.f, seed: `${c.name}/f` }, ...extra];
}

describe.skipIf(!onednn.ok)('onednn convolution kernels match cpu', () => {
  for (const c of [...CONV_CASES, ...DILATED_CASES]) {
    it(`Conv2D: ${c.name}`, async () => {
      await expectSameOnBoth(inputsOf(c), (x, f) => conv(c, x!, f!), { kernel: 'Conv2D' });
    });
  }

  it('Conv2D: a numeric pad with unequal strides keeps tfjs\' own output shape (cpu fallback)', async () => {
    // tfjs sizes both output dims with one stride here; oneDNN cannot express that, so cpu must run.
    const c: ConvCase = { name: 'quirk', x: [1, 7, 11, 2], f: [3, 2, 2, 3], strides: [2, 1], pad: 1 };
    await expectSameOnBoth(inputsOf(c), (x, f) => conv(c, x!, f!), null);
  });

  // tfjs' conv2d gradient drops dimRoundingMode, so the ceil case never reaches the backprop kernels.
  for (const c of CONV_CASES.filter((k) => k.rounding === undefined)) {
    it(`Conv2DBackpropInput + Conv2DBackpropFilter: ${c.name}`, async () => {
      const dyShape = tf.tidy(() => conv(c, tf.zeros(c.x), tf.zeros(c.f)).shape);
      const inputs = inputsOf(c, [{ shape: dyShape, seed: `${c.name}/dy` }]);
      // d/dx and d/df of sum(conv(x, f) * dy) are exactly the two backprop kernels applied to dy.
      const grads = (x: tf.Tensor, f: tf.Tensor, dy: tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(c, a, b), dy)))([x, f]);
      await expectSameOnBoth(inputs, (x, f, dy) => grads(x!, f!, dy!), { kernel: 'Conv2DBackpropInput' });
      await expectSameOnBoth(inputs, (x, f, dy) => grads(x!, f!, dy!), { kernel: 'Conv2DBackpropFilter' });
    });
  }

  it('FusedConv2D: bias + relu, bias + linear, no bias, scalar bias', async () => {
    const c = CONV_CASES[3]!;
    const outChannels = c.f[3]!;
    const inputs = inputsOf(c, [{ shape: [outChannels], seed: 'bias' }, { shape: [1], seed: 'scalar bias' }]);
    const fused = (x: tf.Tensor, f: tf.Tensor, bias: tf.Tensor | undefined, activation: 'relu' | 'linear') =>
      tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.strides, pad: c.pad as 'same', bias, activation });
    const out = await expectSameOnBoth(
      inputs,
      (x, f, b, s) => [fused(x!, f!, b, 'relu'), fused(x!, f!, b, 'linear'), fused(x!, f!, undefined, 'relu'), fused(x!, f!, s, 'relu')],
      { kernel: 'FusedConv2D', minNative: 4 },
    );
    // relu must have clipped something, or the fused activation went untested.
    expect(out[0]!.some((v) => v === 0)).toBe(true);
    expect(out[1]!.some((v) => v < 0)).toBe(true);
  });

  it('FusedConv2D: an activation without a native version falls back to cpu and stays exact', async () => {
    const c = CONV_CASES[0]!;
    const inputs = inputsOf(c, [{ shape: [c.f[3]!], seed: 'bias' }]);
    await expectSameOnBoth(
      inputs,
      (x, f, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: 1, pad: 'same', bias: b, activation: 'elu' }),
      null,
    );
  });
});

describe.skipIf(!onednn.ok)('onednn matmul kernels match cpu', () => {
  const cases: Array<{ name: string; a: number[]; b: number[]; tA: boolean; tB: boolean }> = [
    { name: '2-D odd sizes', a: [7, 13], b: [13, 5], tA: false, tB: false },
    { name: 'transposeA', a: [13, 7], b: [13, 5], tA: true, tB: false },
    { name: 'transposeB', a: [7, 13], b: [5, 13], tA: false, tB: true },
    { name: 'both transposed', a: [13, 7], b: [5, 13], tA: true, tB: true },
    { name: 'batched 3-D', a: [3, 4, 6], b: [3, 6, 5], tA: false, tB: false },
    { name: 'batch broadcast of a', a: [1, 4, 6], b: [3, 5, 6], tA: false, tB: true },
    { name: 'rank-2 a against batched b', a: [4, 6], b: [2, 3, 6, 5], tA: false, tB: false },
    { name: 'vector-like 1xK', a: [1, 9], b: [9, 1], tA: false, tB: false },
  ];
  for (const c of cases) {
    it(`BatchMatMul: ${c.name}`, async () => {
      const inputs = [{ shape: c.a, seed: `${c.name}/a` }, { shape: c.b, seed: `${c.name}/b` }];
      await expectSameOnBoth(inputs, (a, b) => tf.matMul(a!, b!, c.tA, c.tB), { kernel: 'BatchMatMul' });
    });
  }

  it('_FusedMatMul: bias with relu and linear, all transposes', async () => {
    for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const aShape = tA ? [10, 6] : [6, 10];
      const bShape = tB ? [7, 10] : [10, 7];
      const inputs = [{ shape: aShape, seed: `a${tA}` }, { shape: bShape, seed: `b${tB}` }, { shape: [7], seed: 'bias' }];
      const out = await expectSameOnBoth(
        inputs,
        (a, b, bias) => [
          tf.fused.matMul({ a: a!, b: b!, transposeA: tA, transposeB: tB, bias, activation: 'relu' }),
          tf.fused.matMul({ a: a!, b: b!, transposeA: tA, transposeB: tB, bias, activation: 'linear' }),
        ],
        { kernel: '_FusedMatMul', minNative: 2 },
      );
      expect(out[0]!.some((v) => v === 0)).toBe(true);
    }
  });

  it('gradients through a dense layer (matmul with transposes inside the backward pass)', async () => {
    const inputs = [{ shape: [5, 8], seed: 'x' }, { shape: [8, 3], seed: 'w' }, { shape: [3], seed: 'b' }];
    await expectSameOnBoth(
      inputs,
      (x, w, b) => tf.grads((xx: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.square(tf.fused.matMul({ a: xx, b: ww, bias: bb, activation: 'relu' }))))([x!, w!, b!]),
      { kernel: 'BatchMatMul', minNative: 2 },
    );
  });
});

describe.skipIf(!onednn.ok)('onednn max-pool kernels match cpu', () => {
  const cases: Array<{ name: string; x: number[]; size: number | [number, number]; strides: number | [number, number]; pad: 'same' | 'valid' | number }> = [
    { name: '3x3 stride 2 same (ResNet stem)', x: [2, 9, 9, 4], size: 3, strides: 2, pad: 'same' },
    { name: '2x2 stride 2 valid, odd input', x: [1, 7, 9, 3], size: 2, strides: 2, pad: 'valid' },
    { name: '3x2 numeric pad', x: [2, 6, 7, 5], size: [3, 2], strides: 2, pad: 1 },
    { name: '3x3 strides [1,2] same', x: [2, 6, 7, 5], size: 3, strides: [1, 2], pad: 'same' },
  ];
  for (const c of cases) {
    it(`MaxPool + MaxPoolGrad: ${c.name}`, async () => {
      const outShape = tf.tidy(() => tf.maxPool(tf.zeros(c.x) as tf.Tensor4D, c.size, c.strides, c.pad).shape);
      const inputs = [{ shape: c.x, seed: `${c.name}/x` }, { shape: outShape, seed: `${c.name}/dy` }];
      await expectSameOnBoth(inputs, (x) => tf.maxPool(x as tf.Tensor4D, c.size, c.strides, c.pad), { kernel: 'MaxPool' });
      await expectSameOnBoth(
        inputs,
        (x, dy) => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(xx as tf.Tensor4D, c.size, c.strides, c.pad), dy!)))(x!),
        { kernel: 'MaxPoolGrad' },
      );
    });
  }

  it('MaxPoolGrad sends a tied window\'s gradient to the first maximum, as cpu does', async () => {
    // relu output is full of exact zeros, so whole windows tie. The gradient is taken with respect to
    // that output itself: taken through the relu, the tied zeros' gradient would vanish whatever the rule.
    const inputs = [{ shape: [1, 6, 6, 2], seed: 'ties' }];
    const out = await expectSameOnBoth(
      inputs,
      (x) => tf.grad((r: tf.Tensor) => tf.sum(tf.maxPool(r as tf.Tensor4D, 2, 2, 'valid')))(tf.relu(tf.sub(x!, 1))),
      { kernel: 'MaxPoolGrad' },
    );
    // One 1 per 2x2 window per channel: 3 x 3 windows x 2 channels.
    expect(out[0]!.every((v) => v === 0 || v === 1)).toBe(true);
    expect(out[0]!.reduce((a, v) => a + v, 0)).toBe(18);
  });
});

describe.skipIf(!onednn.ok)('onednn pad and slice kernels match cpu exactly', () => {
  const padCases: Array<{ name: string; shape: number[]; paddings: Array<[number, number]>; value?: number }> = [
    { name: 'BiT root: zero pad of H and W', shape: [2, 5, 6, 3], paddings: [[0, 0], [1, 1], [1, 1], [0, 0]] },
    { name: 'every axis, asymmetric, non-zero constant', shape: [2, 3, 4, 2], paddings: [[1, 0], [0, 2], [3, 1], [1, 1]], value: -2.5 },
    { name: 'channels only', shape: [3, 2, 2, 4], paddings: [[0, 0], [0, 0], [0, 0], [2, 1]] },
    { name: 'rank 1 and rank 2', shape: [7], paddings: [[2, 3]] },
    { name: 'nothing padded', shape: [2, 3], paddings: [[0, 0], [0, 0]] },
  ];
  for (const c of padCases) {
    it(`PadV2: ${c.name}`, async () => {
      await expectSameOnBoth([{ shape: c.shape, seed: `pad/${c.name}` }], (x) => tf.pad(x!, c.paddings, c.value ?? 0), { kernel: 'PadV2' });
    });
  }

  const sliceCases: Array<{ name: string; shape: number[]; begin: number[]; size: number[] }> = [
    { name: 'interior of H and W (the pad gradient)', shape: [2, 7, 8, 3], begin: [0, 1, 1, 0], size: [2, 5, 6, 3] },
    { name: 'every axis offset, -1 size', shape: [3, 4, 5, 2], begin: [1, 2, 0, 1], size: [2, -1, 4, 1] },
    { name: 'leading rows only (one contiguous run)', shape: [6, 4], begin: [2, 0], size: [3, 4] },
    { name: 'empty', shape: [4, 3], begin: [1, 0], size: [0, 3] },
  ];
  for (const c of sliceCases) {
    it(`Slice: ${c.name}`, async () => {
      // A contiguous slice takes tfjs' own shortcut before any kernel runs, so only the others must be native.
      const contiguous = c.shape.length === 2 && c.size[1] === c.shape[1];
      await expectSameOnBoth([{ shape: c.shape, seed: `slice/${c.name}` }], (x) => tf.slice(x!, c.begin, c.size), contiguous || c.size.includes(0) ? null : { kernel: 'Slice' });
    });
  }

  it('gradients through the BiT root pattern (pad -> valid max-pool)', async () => {
    const inputs = [{ shape: [2, 8, 8, 4], seed: 'root/x' }];
    await expectSameOnBoth(
      inputs,
      (x) => tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.maxPool(tf.pad(a as tf.Tensor4D, [[0, 0], [1, 1], [1, 1], [0, 0]]), 3, 2, 'valid'))))(x!),
      { kernel: 'Slice' },
    );
  });
});

describe.skipIf(!onednn.ok)('onednn training step matches cpu', () => {
  it('conv -> batchnorm -> relu -> maxpool -> conv -> mean: loss and every gradient', async () => {
    const shapes = { x: [4, 10, 10, 3], w1: [3, 3, 3, 8], gamma: [8], beta: [8], w2: [3, 3, 8, 6] };
    const run = async (backend: 'cpu' | 'onednn') => {
      if (backend === 'cpu') await useCpuBackend();
      else await tf.setBackend('onednn');
      const make = (name: keyof typeof shapes, scale: number) =>
        tf.tensor(randomValues(shapes[name], name).map((v) => v * scale), shapes[name], 'float32');
      const x = make('x', 1);
      const vars = {
        w1: tf.variable(make('w1', 0.3), true, `w1-${backend}`),
        gamma: tf.variable(tf.add(make('gamma', 0.1), 1), true, `gamma-${backend}`),
        beta: tf.variable(make('beta', 0.1), true, `beta-${backend}`),
        w2: tf.variable(make('w2', 0.2), true, `w2-${backend}`),
      };
      const { value, grads } = tf.variableGrads(() => {
        const h = tf.conv2d(x as tf.Tensor4D, vars.w1 as tf.Variable<tf.Rank.R4>, 1, 'same');
        // Written out rather than tf.moments, whose Cast node has a gradient that needs tensor methods
        // (dy.clone) this tfjs-core set-up does not install.
        const mean = tf.mean(h, [0, 1, 2]);
        const variance = tf.mean(tf.square(tf.sub(h, mean)), [0, 1, 2]);
        const bn = tf.batchNorm(h, mean, variance, vars.beta, vars.gamma, 1e-5);
        const pooled = tf.maxPool(tf.relu(bn), 3, 2, 'same');
        const y = tf.conv2d(pooled, vars.w2 as tf.Variable<tf.Rank.R4>, 2, 'valid');
        // A non-uniform weighting so that every output position gets a different gradient.
        const weights = tf.reshape(tf.linspace(-1, 1, y.size), y.shape);
        return tf.mean(tf.mul(y, weights)) as tf.Scalar;
      });
      const result = {
        loss: value.dataSync()[0]!,
        grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k.replace(`-${backend}`, ''), g.dataSync() as Float32Array])),
      };
      tf.dispose([x, value, ...Object.values(grads), ...Object.values(vars)]);
      return result;
    };
    const cpu = await run('cpu');
    const before = { fwd: nativeRuns.get('Conv2D') ?? 0, bwdFilter: nativeRuns.get('Conv2DBackpropFilter') ?? 0, pool: nativeRuns.get('MaxPoolGrad') ?? 0 };
    const one = await run('onednn');
    expect(nativeRuns.get('Conv2D')! - before.fwd).toBeGreaterThanOrEqual(2);
    expect(nativeRuns.get('Conv2DBackpropFilter')! - before.bwdFilter).toBe(2);
    expect(nativeRuns.get('MaxPoolGrad')! - before.pool).toBe(1);
    expect(Math.abs(one.loss - cpu.loss) / Math.abs(cpu.loss)).toBeLessThan(TOLERANCE);
    expect(Object.keys(one.grads).sort()).toEqual(['beta', 'gamma', 'w1', 'w2']);
    for (const [name, g] of Object.entries(cpu.grads)) {
      expect(relativeError(one.grads[name]!, g), `gradient of ${name}`).toBeLessThan(TOLERANCE);
      expect(g.some((v) => v !== 0), `gradient of ${name} is not all zero`).toBe(true);
    }
  });
});

describe('broadcastLayout (which binary broadcasts the native loop takes)', () => {
  it('views the output as [outer, mid, inner] with the operand as [outer, 1, inner]', () => {
    expect(broadcastLayout([2, 3, 4], [2, 3, 4])).toEqual([1, 1, 24]);
    expect(broadcastLayout([3], [2, 5, 3])).toEqual([1, 10, 3]);
    expect(broadcastLayout([1, 1, 1, 3], [2, 5, 7, 3])).toEqual([1, 70, 3]);
    expect(broadcastLayout([], [4, 9])).toEqual([1, 36, 1]);
    expect(broadcastLayout([6, 1], [6, 35])).toEqual([6, 35, 1]);
    expect(broadcastLayout([3, 1, 1, 5], [3, 4, 6, 5])).toEqual([3, 24, 5]);
    // Size-1 output axes inside the run do not split it.
    expect(broadcastLayout([2, 1, 1, 1, 5], [2, 3, 1, 4, 5])).toEqual([2, 12, 5]);
  });
  it('refuses broadcasts along two separate runs of axes', () => {
    expect(broadcastLayout([2, 1, 4, 1], [2, 3, 4, 5])).toBeNull();
    expect(broadcastLayout([1, 3, 1], [2, 3, 4])).toBeNull();
  });
});

describe.skipIf(!onednn.ok)('onednn element-wise kernels match cpu exactly', () => {
  /** Bit-identical results: float32 add/mul/relu/step are exactly rounded in both implementations. */
  async function expectIdentical(inputs: Init[], fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[], native: { kernel: string; runs: number }) {
    const expected = await runOn('cpu', inputs, fn);
    const before = nativeRuns.get(native.kernel) ?? 0;
    const actual = await runOn('onednn', inputs, fn);
    expect((nativeRuns.get(native.kernel) ?? 0) - before, `${native.kernel} native runs`).toBe(native.runs);
    actual.forEach((a, i) => expect(Array.from(a), `output ${i}`).toEqual(Array.from(expected[i]!)));
  }

  const binaryCases: Array<{ name: string; a: number[]; b: number[] }> = [
    { name: 'same shape', a: [2, 5, 7, 3], b: [2, 5, 7, 3] },
    { name: 'per-channel vector', a: [2, 5, 7, 3], b: [3] },
    { name: 'vector first', a: [3], b: [2, 5, 7, 3] },
    { name: '[1,1,1,C] against NHWC', a: [2, 5, 7, 3], b: [1, 1, 1, 3] },
    { name: 'scalar', a: [], b: [4, 9] },
    { name: 'trailing block [H,W,C]', a: [3, 4, 5, 2], b: [4, 5, 2] },
    { name: 'large enough to run in parallel', a: [4, 16, 16, 33], b: [33] },
    { name: 'per-row value [N,1] (cosine loss)', a: [6, 1], b: [6, 35] },
    { name: 'per-row value first, rank 3', a: [2, 5, 9], b: [2, 5, 1] },
    { name: '[N,1,1,C] against NHWC (global pool gradient)', a: [3, 1, 1, 5], b: [3, 4, 6, 5] },
    { name: 'middle broadcast, large', a: [16, 12, 12, 32], b: [16, 1, 1, 32] },
  ];
  for (const [kernel, op] of [['Add', tf.add], ['Multiply', tf.mul]] as const) {
    for (const c of binaryCases) {
      it(`${kernel}: ${c.name}`, async () => {
        await expectIdentical([{ shape: c.a, seed: `${c.name}/a` }, { shape: c.b, seed: `${c.name}/b` }], (a, b) => op(a!, b!), { kernel, runs: 1 });
      });
    }
    it(`${kernel}: an outer-product broadcast and int32 operands fall back to cpu`, async () => {
      await expectIdentical([{ shape: [5, 1], seed: 'col' }, { shape: [1, 4], seed: 'row' }], (a, b) => op(a!, b!), { kernel, runs: 0 });
      // Broadcast along two separate runs of axes: not one [outer, 1, inner] layout.
      await expectIdentical([{ shape: [2, 3, 4, 5], seed: 'full' }, { shape: [2, 1, 4, 1], seed: 'split' }], (a, b) => op(a!, b!), { kernel, runs: 0 });
      await expectIdentical([], () => op(tf.tensor1d([1, -2, 3, 7], 'int32'), tf.scalar(3, 'int32')), { kernel, runs: 0 });
    });
  }

  it('Relu and Step (default and non-zero alpha), including NaN, -0 and infinities', async () => {
    const special = (x: tf.Tensor) => tf.concat([tf.reshape(x, [-1]), tf.tensor1d([NaN, -0, 0, Infinity, -Infinity, 1e-30, -1e-30])]);
    const fn = (x: tf.Tensor) => [tf.relu(special(x)), tf.step(special(x)), tf.step(special(x), 0.25)];
    const expected = await runOn('cpu', [{ shape: [3, 5, 4, 2], seed: 'relu' }], fn);
    const before = { relu: nativeRuns.get('Relu') ?? 0, step: nativeRuns.get('Step') ?? 0 };
    const actual = await runOn('onednn', [{ shape: [3, 5, 4, 2], seed: 'relu' }], fn);
    expect(nativeRuns.get('Relu')! - before.relu).toBe(1);
    expect(nativeRuns.get('Step')! - before.step).toBe(2);
    // Object.is tells NaN and the sign of zero apart, which toEqual on numbers would blur.
    actual.forEach((a, i) => a.forEach((v, j) => expect(Object.is(v, expected[i]![j]), `output ${i}[${j}]: ${v} vs ${expected[i]![j]}`).toBe(true)));
  });

  const reduceCases: Array<{ name: string; x: number[]; axis?: number | number[]; keepDims?: boolean }> = [
    { name: 'global average pool axes [1,2]', x: [3, 5, 4, 6], axis: [1, 2] },
    { name: 'axes [1,2] keepDims', x: [3, 5, 4, 6], axis: [1, 2], keepDims: true },
    { name: 'batch axis 0 of [N,C]', x: [37, 5], axis: 0 },
    { name: 'last axis, negative', x: [4, 3, 11], axis: -1 },
    { name: 'every axis (axis omitted)', x: [3, 4, 5] },
    { name: 'unsorted contiguous axes [2,1]', x: [2, 3, 4, 5], axis: [2, 1] },
    { name: 'large, parallel over the outer axis', x: [16, 16, 16, 32], axis: [1, 2] },
  ];
  for (const [kernel, op] of [['Sum', tf.sum], ['Mean', tf.mean]] as const) {
    for (const c of reduceCases) {
      it(`${kernel}: ${c.name}`, async () => {
        await expectIdentical([{ shape: c.x, seed: `${c.name}/x` }], (x) => op(x!, c.axis, c.keepDims), { kernel, runs: 1 });
      });
    }
    it(`${kernel}: non-contiguous axes and int32 fall back to cpu`, async () => {
      await expectIdentical([{ shape: [2, 3, 4], seed: 'nc' }], (x) => op(x!, [0, 2]), { kernel, runs: 0 });
      await expectIdentical([], () => op(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32'), 0), { kernel, runs: 0 });
    });
  }

  it('ReLU gradient: one native pass (SimtripReluGrad) where tfjs runs Step and Multiply, the same values', async () => {
    const inputs = [{ shape: [2, 6, 6, 5], seed: 'x' }, { shape: [2, 6, 6, 5], seed: 'dy' }];
    await expectIdentical(inputs, (x, dy) => tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), dy!)))(x!), { kernel: RELU_GRAD, runs: 1 });
  });
});

describe('outputArray (native kernels\' outputs, not zero-filled)', () => {
  it('starts as NaN under the test suite, so a kernel that skips an element fails its parity test', () => {
    expect(process.env.SIMTRIP_POISON_OUTPUTS).toBe('1');
    const out = outputArray(1000);
    expect(out.length).toBe(1000);
    expect(out.every((v) => Number.isNaN(v))).toBe(true);
    expect(outputArray(0).length).toBe(0);
  });
});
