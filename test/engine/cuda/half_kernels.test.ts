/**
 * Kernels that read half-stored tensors directly (engine.precision mixed16 on the CUDA engine): batch
 * and group norm forward and backward, the element-wise maps of a mixed16 step, the SGD update and the
 * finiteness check. For each, on the host build: half-stored inputs give the bits the same kernel gives
 * on the same values stored as float32, the kernel ran natively, no float32 copy of a half was made
 * (backend.ptr's conversion), and the device-memory peak is no higher than the float32 run's (a copy
 * would add 4 bytes per element).
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { CudaBackend } from '../../../src/engine/cuda/backend.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import {
  ALL_FINITE, BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, GROUP_NORM, GROUP_NORM_GRAD, SGD_UPDATE,
} from '../../../src/engine/custom_kernels.js';
import { float16BitsToFloat32Bits, roundToFloat16 } from '../../../src/io/float16.js';
import { ConfigSchema } from '../../../src/config/schema.js';
import { buildSslModel } from '../../../src/model/build.js';
import { LossScaler } from '../../../src/optim/loss_scale.js';
import { Sgd } from '../../../src/optim/sgd.js';
import { trainStep } from '../../../src/train/step.js';
import { HALF_MAX, HALF_MIN_NORMAL, HALF_MIN_SUBNORMAL, roundToHalf } from '../../../src/ops/fp16_round.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();

const backend = () => tf.backend() as CudaBackend;
const bitsOf = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
const floatsOfBits = (bits: Uint32Array): Float32Array => new Float32Array(bits.buffer, bits.byteOffset, bits.length);
const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

const SPECIALS = [0, -0, HALF_MAX, -HALF_MAX, HALF_MIN_SUBNORMAL, -HALF_MIN_SUBNORMAL, HALF_MIN_NORMAL, 1, -1, Infinity, -Infinity, NaN];

/** n values on the half grid: normals at `scale`, with the special halves in front when `specials`. */
function gridValues(n: number, seed: string, { scale = 1, offset = 0, specials = false } = {}): Float32Array {
  const rng = new Rng('cuda-half-kernels', seed);
  const out = Float32Array.from({ length: n }, () => roundToFloat16(offset + scale * rng.normal()));
  if (specials) SPECIALS.slice(0, n).forEach((v, i) => (out[i] = v));
  return out;
}

/**
 * The same values on cuda-host twice: stored as halves (roundToHalf's output), and read back from
 * those and uploaded again as a float32 tensor.
 */
function stored(values: Float32Array, shape: number[]): { half: tf.Tensor; float: tf.Tensor } {
  const half = roundToHalf(tf.tensor(values, shape));
  expect(backend().isHalf(half)).toBe(true);
  return { half, float: tf.tensor(half.dataSync() as Float32Array, shape) };
}

interface Outcome {
  bits: Uint32Array[];
  /** Which outputs are stored as halves. */
  halfOutputs: boolean[];
  /** float32 copies of half-stored tensors asked for (backend.ptr on a half). */
  copies: number;
  /** Device-memory peak above what was in use before. */
  peak: number;
}

/** Runs f (kernel calls on tensors made beforehand) on cuda-host and takes its outputs' bits. */
function outcome(f: () => tf.Tensor[]): Outcome {
  const addon = hostAddon();
  const ptr = CudaBackend.prototype.ptr;
  let copies = 0;
  CudaBackend.prototype.ptr = function (this: CudaBackend, t: tf.TensorInfo) {
    if (this.isHalf(t) && sizeOf(t.shape) > 0) copies++;
    return ptr.call(this, t);
  };
  const base = addon.memory().inUse;
  addon.resetPeak();
  let outs: tf.Tensor[];
  try {
    outs = f();
  } finally {
    CudaBackend.prototype.ptr = ptr;
  }
  const peak = addon.memory().peak - base;
  const result = {
    bits: outs.map((t) => {
      const values = t.dataSync();
      return values instanceof Float32Array ? Uint32Array.from(bitsOf(values)) : Uint32Array.from(values as ArrayLike<number>);
    }),
    halfOutputs: outs.map((t) => backend().isHalf(t)),
    copies,
    peak,
  };
  tf.dispose(outs);
  return result;
}

function firstDifference(got: Uint32Array, want: Uint32Array): string | null {
  if (got.length !== want.length) return `${got.length} values, expected ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) return `[${i}]: 0x${got[i]!.toString(16)}, expected 0x${want[i]!.toString(16)}`;
  }
  return null;
}

/**
 * `onHalves` (the kernel on half-stored inputs) against `onFloats` (the same kernel on the same values
 * stored as float32): the same bits, natively, with no float32 copy of a half and no higher peak.
 */
function expectSameWithoutCopies(kernel: string, onHalves: () => tf.Tensor[], onFloats: () => tf.Tensor[]): Outcome {
  resetKernelStats();
  const half = outcome(onHalves);
  expect(nativeRuns.get(kernel) ?? 0, `${kernel} ran natively`).toBeGreaterThan(0);
  expect([...fallbackRuns.keys()], 'host fallbacks').toEqual([]);
  const float = outcome(onFloats);
  expect(half.bits.length).toBe(float.bits.length);
  half.bits.forEach((b, i) => expect(firstDifference(b, float.bits[i]!), `${kernel} output ${i}`).toBeNull());
  expect(half.copies, `${kernel}: float32 copies of halves`).toBe(0);
  expect(half.peak, `${kernel}: memory peak on halves vs on float32`).toBeLessThanOrEqual(float.peak);
  return half;
}

describe.skipIf(!load.ok)('element-wise kernels on half-stored inputs (CUDA host build)', () => {
  it('read every half as exactly the float it stands for (NaN payloads included)', async () => {
    await tf.setBackend(CUDA_HOST);
    const all = floatsOfBits(Uint32Array.from({ length: 65536 }, (_, h) => float16BitsToFloat32Bits(h)));
    tf.tidy(() => {
      const { half, float } = stored(all, [65536]);
      // Maximum(x, x) returns its first operand itself, NaN or not: the loaded value, unchanged.
      const got = expectSameWithoutCopies(tf.Maximum, () => [tf.maximum(half, half)], () => [tf.maximum(float, float)]);
      expect(firstDifference(got.bits[0]!, bitsOf(all))).toBeNull();
    });
  });

  const BINARY: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
    [tf.Add, tf.add],
    [tf.Sub, tf.sub],
    [tf.Multiply, tf.mul],
    [tf.RealDiv, tf.div],
    [tf.Maximum, tf.maximum],
    [tf.Minimum, tf.minimum],
    [tf.Pow, tf.pow],
  ];
  // Same shapes (flat, vectorised), a per-channel broadcast, a scalar, an odd size (scalar tail), and
  // broadcasts on both sides that take the strided kernel with and without packs.
  const SHAPES: Array<[number[], number[]]> = [
    [[4, 8, 8, 16], [4, 8, 8, 16]],
    [[4, 8, 8, 16], [16]],
    [[4, 8, 8, 16], []],
    [[3, 37], [3, 37]],
    [[5, 1, 12], [1, 7, 12]],
    [[6, 1, 5], [6, 7, 1]],
  ];
  for (const [name, op] of BINARY) {
    it(`${name}: halves on either side or both, bit-identical to float32, no copies`, async () => {
      await tf.setBackend(CUDA_HOST);
      for (const [sa, sb] of SHAPES) {
        tf.tidy(() => {
          const a = stored(gridValues(sizeOf(sa), `${name}/a/${sa}`, { specials: true }), sa);
          const b = stored(gridValues(sizeOf(sb), `${name}/b/${sb}`, { specials: sizeOf(sb) > 1, offset: name === tf.Pow ? 0 : 0.5 }), sb);
          for (const [x, y] of [[a.half, b.half], [a.half, b.float], [a.float, b.half]] as const) {
            const got = expectSameWithoutCopies(name, () => [op(x, y)], () => [op(a.float, b.float)]);
            expect(got.halfOutputs).toEqual([false]);
          }
        });
      }
    });
  }

  it('Pow with exponent 2 (tf.norm) is one multiply on halves too', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const x = stored(gridValues(1000, 'pow2', { specials: true, scale: 100 }), [1000]);
      const two = tf.scalar(2);
      expectSameWithoutCopies(tf.Pow, () => [tf.pow(x.half, two)], () => [tf.pow(x.float, two)]);
    });
  });

  const UNARY: Array<[string, string, (x: tf.Tensor) => tf.Tensor, boolean]> = [
    ['Abs', tf.Abs, tf.abs, true],
    ['Neg', tf.Neg, tf.neg, true],
    ['Square', tf.Square, tf.square, false],
    ['Step', tf.Step, (x) => tf.step(x), true],
    ['Step, alpha 0.5 (on the grid)', tf.Step, (x) => tf.step(x, 0.5), true],
    ['Step, alpha 0.1 (off the grid)', tf.Step, (x) => tf.step(x, 0.1), false],
  ];
  for (const [label, name, op, keepsHalves] of UNARY) {
    it(`${label}: bit-identical to float32, ${keepsHalves ? 'stored as halves' : 'float32 output'}, no copies`, async () => {
      await tf.setBackend(CUDA_HOST);
      for (const shape of [[4, 8, 8, 16], [37]]) {
        tf.tidy(() => {
          const x = stored(gridValues(sizeOf(shape), `${label}/${shape}`, { specials: true, scale: 300 }), shape);
          const got = expectSameWithoutCopies(name, () => [op(x.half)], () => [op(x.float)]);
          expect(got.halfOutputs).toEqual([keepsHalves]);
        });
      }
    });
  }

  it('Step on every half, kept as halves', async () => {
    await tf.setBackend(CUDA_HOST);
    const all = floatsOfBits(Uint32Array.from({ length: 65536 }, (_, h) => float16BitsToFloat32Bits(h)));
    tf.tidy(() => {
      const { half, float } = stored(all, [65536]);
      expectSameWithoutCopies(tf.Step, () => [tf.step(half)], () => [tf.step(float)]);
      expectSameWithoutCopies(tf.Neg, () => [tf.neg(half)], () => [tf.neg(float)]);
    });
  });

  it('the ReLU gradient of a half-stored activation (Step, then the product with dy) makes no copy', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const x = stored(gridValues(4096, 'relu-grad/x', { specials: true }), [4, 8, 8, 16]);
      const dy = stored(gridValues(4096, 'relu-grad/dy'), [4, 8, 8, 16]);
      const grad = (x: tf.Tensor, dy: tf.Tensor) => tf.grad((t: tf.Tensor) => tf.relu(t))(x, dy);
      expectSameWithoutCopies(tf.Multiply, () => [grad(x.half, dy.half), grad(x.half, dy.float)], () => [grad(x.float, dy.float), grad(x.float, dy.float)]);
    });
  });

  it('empty half-stored tensors', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const x = stored(new Float32Array(0), [0, 4]);
      expect(tf.add(x.half, x.half).shape).toEqual([0, 4]);
      expect(tf.neg(x.half).shape).toEqual([0, 4]);
    });
  });
});

const EPS = 1e-5;

describe.skipIf(!load.ok)('batch and group norm on half-stored x and dy (CUDA host build)', () => {
  // Channels a multiple of 4 (vectorised loads) and not.
  const BN_SHAPES = [[4, 8, 8, 16], [2, 5, 5, 6]];
  const GN_CASES: Array<[number[], number]> = [[[2, 4, 4, 16], 4], [[2, 3, 3, 12], 3], [[2, 4, 4, 6], 2]];

  const normCases = [
    ...BN_SHAPES.map((shape) => ({ label: `BN [${shape}]`, forward: BATCH_NORM_TRAIN, backward: BATCH_NORM_TRAIN_GRAD, shape, attrs: { eps: EPS } })),
    ...GN_CASES.map(([shape, groups]) => ({ label: `GN [${shape}] in ${groups} groups`, forward: GROUP_NORM, backward: GROUP_NORM_GRAD, shape, attrs: { eps: EPS, groups } })),
  ];

  for (const c of normCases) {
    it(`${c.label}: forward and backward, bit-identical to float32, no copies`, async () => {
      await tf.setBackend(CUDA_HOST);
      const channels = c.shape.at(-1)!;
      const attrs = c.attrs as unknown as tf.NamedAttrMap;
      tf.tidy(() => {
        const x = stored(gridValues(sizeOf(c.shape), `${c.label}/x`, { scale: 3, offset: 20 }), c.shape);
        const dy = stored(gridValues(sizeOf(c.shape), `${c.label}/dy`, { scale: 0.01 }), c.shape);
        const gamma = tf.tensor(gridValues(channels, `${c.label}/gamma`, { offset: 1 }));
        const beta = tf.tensor(gridValues(channels, `${c.label}/beta`));
        const forward = (x: tf.Tensor) => tf.engine().runKernel(c.forward, { x, gamma, beta }, attrs) as tf.Tensor[];
        expectSameWithoutCopies(c.forward, () => forward(x.half), () => forward(x.float));
        const [, mean, variance] = forward(x.float);
        const backward = (dy: tf.Tensor, x: tf.Tensor) => tf.engine().runKernel(c.backward, { dy, x, gamma, mean: mean!, variance: variance! }, attrs) as tf.Tensor[];
        for (const [d, xi] of [[dy.half, x.half], [dy.half, x.float], [dy.float, x.half]] as const) {
          const got = expectSameWithoutCopies(c.backward, () => backward(d, xi), () => backward(dy.float, x.float));
          expect(got.halfOutputs).toEqual([false, false, false]);
        }
      });
    });
  }

  it('FusedBatchNorm (inference) on half-stored x', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const x = stored(gridValues(4096, 'fbn/x', { scale: 2, offset: 1 }), [4, 8, 8, 16]);
      const [mean, variance, offset, scale] = ['mean', 'variance', 'offset', 'scale'].map((k) => tf.tensor1d(gridValues(16, `fbn/${k}`, { offset: 2 }).map(Math.abs)));
      const bn = (x: tf.Tensor) => [tf.batchNorm(x, mean!, variance!, offset, scale, 1e-3)];
      expectSameWithoutCopies(tf.FusedBatchNorm, () => bn(x.half), () => bn(x.float));
    });
  });
});

describe.skipIf(!load.ok)('SimtripSgdUpdate and SimtripAllFinite on half-stored gradients (CUDA host build)', () => {
  for (const [first, weightDecay] of [[true, 0], [true, 5e-4], [false, 0], [false, 1e-2]] as const) {
    it(`SGD, ${first ? 'first step' : 'later step'}, weight decay ${weightDecay}: g read as halves, bit-identical, no copies`, async () => {
      await tf.setBackend(CUDA_HOST);
      tf.tidy(() => {
        const n = 3 * 3 * 16 * 32 + 3;
        const w = tf.tensor(gridValues(n, 'sgd/w', { scale: 0.3 }).map((v, i) => v + i * 1e-7));
        const buf = tf.tensor(gridValues(n, 'sgd/buf').map((v) => v / 3));
        const g = stored(gridValues(n, 'sgd/g', { specials: true }), [n]);
        const attrs = { lr: 0.1, momentum: 0.9, weightDecay, first } as unknown as tf.NamedAttrMap;
        const update = (g: tf.Tensor) => tf.engine().runKernel(SGD_UPDATE, first ? { w, g } : { w, g, buf }, attrs) as tf.Tensor[];
        expectSameWithoutCopies(SGD_UPDATE, () => update(g.half), () => update(g.float));
      });
    });
  }

  it('AllFinite: halves checked as halves (Inf and NaN in any of them, past the first launch too), no copies', async () => {
    await tf.setBackend(CUDA_HOST);
    tf.tidy(() => {
      const finite = Array.from({ length: 70 }, (_, i) => stored(gridValues(1 + 37 * i, `finite/${i}`, { scale: 1000 }), [1 + 37 * i]));
      const check = (ts: tf.Tensor[]) => [tf.engine().runKernel(ALL_FINITE, Object.fromEntries(ts.map((t, i) => [`g${i}`, t]))) as tf.Tensor];
      const flag = (o: Outcome) => o.bits[0]![0];
      expect(flag(expectSameWithoutCopies(ALL_FINITE, () => check(finite.map((t) => t.half)), () => check(finite.map((t) => t.float))))).toBe(1);
      for (const bad of [Infinity, -Infinity, NaN]) {
        for (const at of [3, 66]) {
          const values = gridValues(1 + 37 * at, `bad/${at}`);
          values[values.length - 1] = bad;
          const broken = stored(values, [values.length]);
          const halves = finite.map((t, i) => (i === at ? broken.half : t.half));
          // Half and float32 tensors in one list.
          const mixed = finite.map((t, i) => (i === at ? broken.half : i % 2 ? t.half : t.float));
          const floats = finite.map((t, i) => (i === at ? broken.float : t.float));
          expect(flag(expectSameWithoutCopies(ALL_FINITE, () => check(halves), () => check(floats))), `${bad} in tensor ${at}`).toBe(0);
          expect(flag(expectSameWithoutCopies(ALL_FINITE, () => check(mixed), () => check(floats))), `${bad} in tensor ${at}, mixed`).toBe(0);
        }
      }
    });
  });
});

describe.skipIf(!load.ok)('a mixed16 training step (CUDA host build)', () => {
  const READ_HALVES = new Set<string>([
    BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, GROUP_NORM, GROUP_NORM_GRAD, SGD_UPDATE, ALL_FINITE, tf.FusedBatchNorm,
    tf.Add, tf.Sub, tf.Multiply, tf.RealDiv, tf.Maximum, tf.Minimum, tf.Pow, tf.Abs, tf.Neg, tf.Square, tf.Step, tf.Relu,
  ]);

  it('makes no float32 copy of a half in the kernels that read halves, and they do receive halves', async () => {
    await tf.setBackend(CUDA_HOST);
    const cfg = ConfigSchema.parse({ model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { proj_layers: 2, proj_dim: 16, pred_hidden: 8 } });
    const model = buildSslModel(cfg.model, cfg.method, 3, { precision: 'mixed16' });
    const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4 });
    const rng = new Rng('cuda-half-kernels', 'step');
    const views = [0, 1].map(() => Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => rng.normal()));
    // Which kernel is running, through the kernel registry's entries of this backend (restored after).
    const running: string[] = [];
    const withHalves = new Map<string, number>();
    const copiesIn = new Map<string, number>();
    const kernels = tf.getKernelsForBackend(CUDA_HOST).filter((k) => READ_HALVES.has(k.kernelName));
    const originals = kernels.map((k) => k.kernelFunc);
    const ptr = CudaBackend.prototype.ptr;
    kernels.forEach((k, i) => {
      (k as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
        const inputs = Object.values(args.inputs).filter((t): t is tf.TensorInfo => t != null);
        if (inputs.some((t) => backend().isHalf(t))) withHalves.set(k.kernelName, (withHalves.get(k.kernelName) ?? 0) + 1);
        running.push(k.kernelName);
        try {
          return originals[i]!(args);
        } finally {
          running.pop();
        }
      };
    });
    CudaBackend.prototype.ptr = function (this: CudaBackend, t: tf.TensorInfo) {
      const top = running.at(-1);
      if (top && this.isHalf(t)) copiesIn.set(top, (copiesIn.get(top) ?? 0) + 1);
      return ptr.call(this, t);
    };
    try {
      const out = trainStep(model.method, model.store, opt, views, 8, () => 0.01, { scaler: new LossScaler() });
      expect(Number.isFinite(out.loss)).toBe(true);
    } finally {
      CudaBackend.prototype.ptr = ptr;
      kernels.forEach((k, i) => ((k as { kernelFunc: tf.KernelFunc }).kernelFunc = originals[i]!));
      opt.dispose();
      model.store.dispose();
    }
    expect(Object.fromEntries(copiesIn)).toEqual({});
    for (const k of [BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, tf.Add, tf.Multiply, tf.Step]) expect(withHalves.get(k) ?? 0, k).toBeGreaterThan(0);
  });
});
