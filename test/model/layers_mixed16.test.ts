/**
 * The mixed16 precision policy of the layers: Conv2d and Linear round input, weight, bias and output
 * to the half grid (compared with a reference built from src/io/float16.ts, not from the op under
 * test), BatchNorm rounds its output only, the master weights stay float32. Gradients through the
 * rounding are checked against central finite differences where those are exact (integer values on
 * the half grid: a quadratic loss makes the h = 1 central difference exact), and shown to land on the
 * half grid otherwise.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { roundToFloat16, roundToFloat16InPlace } from '../../src/io/float16.js';
import { BatchNorm, Conv2d, Linear, residualSum, type Context, type Precision } from '../../src/model/layers.js';
import { ParamStore } from '../../src/model/params.js';
import { Rng } from '../../src/util/rng.js';
import { useCpuBackend } from '../helpers.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`mixed16 layers on onednn skipped: ${onednn.reason} (${onednn.hint})`);
const backends = onednn.ok ? (['cpu', 'onednn'] as const) : (['cpu'] as const);

function ctxFor(precision: Precision | undefined, seed = 'layers'): Context {
  return { store: new ParamStore(), rng: new Rng('mixed16-test', seed), precision };
}

function randomTensor(shape: number[], seed: string, scale = 1): tf.Tensor {
  const rng = new Rng('mixed16-values', seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => scale * rng.normal()), shape);
}

function integerTensor(shape: number[], seed: string, max: number): tf.Tensor {
  const rng = new Rng('mixed16-ints', seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.int(2 * max + 1) - max), shape);
}

/** The reference rounding, on a tensor's values (independent of src/ops/fp16_round.ts). */
function halfOf(t: tf.Tensor): tf.Tensor {
  return tf.tensor(roundToFloat16InPlace(Float32Array.from(t.dataSync())), t.shape);
}

const onGrid = (values: ArrayLike<number>): boolean => Array.from(values).every((v) => roundToFloat16(v) === v);

async function use(backend: 'cpu' | 'onednn'): Promise<void> {
  if (backend === 'cpu') await useCpuBackend();
  else await tf.setBackend('onednn');
}

describe.each(backends)('mixed16 forward (%s)', (backend) => {
  it('Linear: round(round(x) @ round(w) + round(b)), master weights untouched', async () => {
    await use(backend);
    const lin = new Linear(ctxFor('mixed16'), 'fc', 6, 5);
    const plain = new Linear(ctxFor('fp32'), 'fc', 6, 5);
    const wBefore = lin.weight.dataSync().slice();
    tf.tidy(() => {
      const x = randomTensor([4, 6], 'x', 3);
      const y = lin.apply(x as tf.Tensor2D);
      const expected = halfOf(tf.add(tf.matMul(halfOf(x), halfOf(lin.weight)), halfOf(lin.bias!)));
      expect(y.dataSync()).toEqual(expected.dataSync());
      // Same seed, same init: the fp32 layer differs only by the rounding.
      expect(plain.weight.dataSync()).toEqual(wBefore);
      expect(plain.apply(x as tf.Tensor2D).dataSync()).not.toEqual(y.dataSync());
    });
    expect(lin.weight.dataSync()).toEqual(wBefore);
    expect(onGrid(wBefore)).toBe(false);
  });

  it('Conv2d: input, kernel (also one passed in, as StdConv2d does), bias and output rounded', async () => {
    await use(backend);
    const conv = new Conv2d(ctxFor('mixed16'), 'conv', 3, 4, 3, 2, 1, true);
    tf.tidy(() => {
      conv.bias!.assign(randomTensor([4], 'bias', 0.1));
      const x = randomTensor([2, 5, 5, 3], 'x', 2) as tf.Tensor4D;
      const pad: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [1, 1], [1, 1], [0, 0]];
      const reference = (w: tf.Tensor) =>
        halfOf(tf.add(tf.conv2d(halfOf(x) as tf.Tensor4D, halfOf(w) as tf.Tensor4D, 2, pad), halfOf(conv.bias!))).dataSync();
      expect(conv.apply(x).dataSync()).toEqual(reference(conv.weight));
      const standardised = randomTensor([3, 3, 3, 4], 'other kernel') as tf.Tensor4D;
      expect(conv.apply(x, standardised).dataSync()).toEqual(reference(standardised));
    });
  });

  it('BatchNorm: float32 statistics, output rounded, in training and inference', async () => {
    await use(backend);
    const bn16 = new BatchNorm(ctxFor('mixed16'), 'bn', 3);
    const bn32 = new BatchNorm(ctxFor('fp32'), 'bn', 3);
    tf.tidy(() => {
      const x = randomTensor([4, 2, 2, 3], 'bn x', 5);
      for (const training of [true, false]) {
        const y16 = bn16.apply(x, training).dataSync();
        const y32 = bn32.apply(x, training);
        expect(y16).toEqual(halfOf(y32).dataSync());
        expect(y16).not.toEqual(y32.dataSync());
      }
      expect(bn16.runningMean.dataSync()).toEqual(bn32.runningMean.dataSync());
      expect(bn16.runningVar.dataSync()).toEqual(bn32.runningVar.dataSync());
      expect(onGrid(bn16.runningVar.dataSync())).toBe(false);
    });
  });

  it('overflows to Inf where fp16 would, and leaks no tensors', async () => {
    await use(backend);
    const lin16 = new Linear(ctxFor('mixed16'), 'fc', 2, 1, false);
    const lin32 = new Linear(ctxFor('fp32'), 'fc', 2, 1, false);
    lin16.weight.assign(tf.tensor2d([[300], [300]]));
    lin32.weight.assign(tf.tensor2d([[300], [300]]));
    const x = tf.tensor2d([[150, 150]]);
    const before = tf.memory().numTensors;
    const y16 = lin16.apply(x);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(y16.dataSync()[0]).toBe(Infinity); // 90000 > 65504
    const y32 = lin32.apply(x);
    expect(y32.dataSync()[0]).toBe(90000);
    tf.dispose([x, y16, y32]);
  });
});

describe('residualSum', () => {
  it('rounds the sum under mixed16, keeps it float32 under fp32, and leaves no float32 sum behind', async () => {
    await useCpuBackend();
    const a = tf.tensor1d([0.1, 70000, 1e-8]);
    const b = tf.tensor1d([0.2, 1, 0]);
    const sum = residualSum('fp32', a, b);
    expect(Array.from(sum.dataSync())).toEqual(Array.from(Float32Array.from([0.1 + 0.2, 70001, 1e-8])));
    sum.dispose();
    const before = tf.memory().numTensors;
    const y = residualSum('mixed16', a, b);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(Array.from(y.dataSync())).toEqual([roundToFloat16(Math.fround(0.1) + Math.fround(0.2)), Infinity, 0]);
    tf.dispose([a, b, y]);
  });
});

type Layer = { apply(x: tf.Tensor): tf.Tensor; vars: tf.Variable[] };

/** sum(y^2)/2: quadratic in every single coordinate, so central differences with h = 1 are exact. */
function lossOf(layer: Layer, x: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.div(tf.sum(tf.square(layer.apply(x))), 2) as tf.Scalar);
}

/** Analytic gradients of lossOf for [x, ...layer.vars] (x as a variable too). */
function analytic(layer: Layer, x: tf.Variable): Float32Array[] {
  const { value, grads } = tf.variableGrads(() => lossOf(layer, x), [x, ...layer.vars]);
  const out = [x, ...layer.vars].map((v) => Float32Array.from(grads[v.name]!.dataSync()));
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

function centralDifferences(layer: Layer, x: tf.Variable, h: number): Float32Array[] {
  return [x, ...layer.vars].map((v) => {
    const base = Float32Array.from(v.dataSync());
    const out = new Float32Array(base.length);
    const at = (i: number, delta: number) => {
      const values = base.slice();
      values[i] = values[i]! + delta;
      tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
      const l = lossOf(layer, x);
      const r = l.dataSync()[0]!;
      l.dispose();
      return r;
    };
    for (let i = 0; i < base.length; i++) out[i] = (at(i, h) - at(i, -h)) / (2 * h);
    tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
    return out;
  });
}

function linearLayer(precision: Precision, seed: string): Layer {
  const lin = new Linear(ctxFor(precision, seed), 'fc', 5, 3);
  return { apply: (x) => lin.apply(x as tf.Tensor2D), vars: [lin.weight, lin.bias!] };
}

function convLayer(precision: Precision, seed: string): Layer {
  const conv = new Conv2d(ctxFor(precision, seed), 'conv', 2, 3, 3, 1, 1, true);
  return { apply: (x) => conv.apply(x as tf.Tensor4D), vars: [conv.weight, conv.bias!] };
}

const LAYERS = [
  { name: 'Linear', make: linearLayer, x: [2, 5] },
  { name: 'Conv2d', make: convLayer, x: [1, 4, 4, 2] },
];

describe.each(backends)('mixed16 gradients (%s)', (backend) => {
  it.each(LAYERS)('$name: exact finite differences on half-grid integers, equal to fp32', async ({ make, x: shape }) => {
    await use(backend);
    const layer16 = make('mixed16', 'fd');
    const layer32 = make('fp32', 'fd');
    // Small integers: every value, product and sum is exact in fp16, so rounding is the identity.
    const x = tf.variable(integerTensor(shape, 'x', 3));
    for (const [i, v] of layer16.vars.entries()) {
      const ints = integerTensor(v.shape, `param ${i}`, 2);
      v.assign(ints);
      layer32.vars[i]!.assign(ints);
      ints.dispose();
    }
    const before = tf.memory().numTensors;
    const grads16 = analytic(layer16, x);
    expect(tf.memory().numTensors).toBe(before);
    const fd = centralDifferences(layer16, x, 1);
    const grads32 = analytic(layer32, x);
    grads16.forEach((g, i) => {
      expect(g.some((v) => v !== 0)).toBe(true);
      expect(g).toEqual(fd[i]);
      expect(g).toEqual(grads32[i]);
    });
    x.dispose();
  });

  it.each(LAYERS)('$name: off the grid, every gradient is the fp32 chain rule on half values, rounded once', async ({ make, x: shape }) => {
    await use(backend);
    const layer16 = make('mixed16', 'off grid');
    const x = tf.variable(randomTensor(shape, 'x off grid', 3));
    const grads16 = analytic(layer16, x);
    // dL/dy = y, the (half) output; every input of the layer's one fp16 op reaches its gradient as
    // round(that op's fp32 backward at the rounded values, given dy): an fp32 twin with the rounded
    // parameters and sum(layer(x) * dy) as its loss gives that backward.
    const layer32 = make('fp32', 'off grid');
    layer16.vars.forEach((v, i) => layer32.vars[i]!.assign(tf.tidy(() => halfOf(v))));
    const xh = tf.variable(tf.tidy(() => halfOf(x)));
    const dy = layer16.apply(x);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer32.apply(xh), dy)) as tf.Scalar, [xh, ...layer32.vars]);
    const unrounded = [xh, ...layer32.vars].map((v) => Float32Array.from(grads[v.name]!.dataSync()));
    grads16.forEach((g, i) => {
      expect(onGrid(g)).toBe(true);
      expect(g).toEqual(Float32Array.from(unrounded[i]!, (v) => roundToFloat16(v)));
      expect(g).not.toEqual(unrounded[i]);
    });
    tf.dispose([x, xh, dy, value, ...Object.values(grads)]);
  });
});
