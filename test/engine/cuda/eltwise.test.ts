/**
 * Element-wise kernels on the CUDA host build against the cpu backend: every op on random inputs with
 * NaN, infinities and signed zeros, the broadcast patterns of a training step (channels, [N,1,1,C],
 * scalars, outer products, ranks 5 and 6), int32 and bool, empty tensors, and the SimSiam loss with
 * its gradient.
 */
import { describe, expect, it } from 'vitest';
import { tf } from '../../../src/engine/tf.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../../../src/engine/kernel_stats.js';
import { BINARY, broadcastView, ELTWISE_KERNELS, type EltwiseAddon, STORAGE, UNARY } from '../../../src/engine/cuda/kernels/eltwise.js';
import { float16ArrayToFloat32, float32ArrayToFloat16 } from '../../../src/io/float16.js';
import { negativeCosine } from '../../../src/method/losses.js';
import { Rng } from '../../../src/util/rng.js';
import { CUDA_HOST, expectSameAsCpu, hostAddon, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();
const rng = new Rng('cuda-eltwise');

const SPECIALS = [NaN, Infinity, -Infinity, -0, 0, 0.5, -0.5, 1.5, 2.5, -2.5, 1, -1, 2, 3];
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Normal values times `scale`, every fifth one (at a random place) a special value. */
function floats(shape: readonly number[], scale = 1, specials = true): Float32Array {
  return Float32Array.from({ length: count(shape) }, () => (specials && rng.int(5) === 0 ? SPECIALS[rng.int(SPECIALS.length)]! : rng.normal() * scale));
}
const ints = (shape: readonly number[], lo = -9, hi = 9) => Int32Array.from({ length: count(shape) }, () => lo + rng.int(hi - lo + 1));
const bools = (shape: readonly number[]) => Uint8Array.from({ length: count(shape) }, () => rng.int(2));

/** f matches cpu (within `tolerance`), every kernel in `kernels` ran natively and nothing fell back. */
async function expectNative(kernels: string[], f: () => tf.Tensor | tf.Tensor[], tolerance = 1e-6): Promise<void> {
  resetKernelStats();
  await expectSameAsCpu(f, tolerance);
  for (const k of kernels) expect(nativeRuns.get(k), `${k} ran natively`).toBeGreaterThan(0);
  expect(Object.fromEntries(fallbackRuns)).toEqual({});
}

/** f gives the same bits on both backends (signed zeros included), natively. */
async function expectBitExact(kernels: string[], f: () => tf.Tensor): Promise<void> {
  resetKernelStats();
  const [ref] = await valuesOn('cpu', f);
  const [got] = await valuesOn(CUDA_HOST, f);
  expect(got!.length).toBe(ref!.length);
  const mismatches = Array.from(ref!, (r, i) => [i, r, got![i]!]).filter(([, r, g]) => !Object.is(r, g));
  expect(mismatches.slice(0, 5), `${kernels} bit for bit`).toEqual([]);
  for (const k of kernels) expect(nativeRuns.get(k), `${k} ran natively`).toBeGreaterThan(0);
  expect(Object.fromEntries(fallbackRuns)).toEqual({});
}

describe('broadcast views', () => {
  it('merge the dimensions both inputs step over together', () => {
    expect(broadcastView([2, 6, 6, 8], [[2, 6, 6, 8], [8]])).toEqual({ shape: [72, 8], strides: [[8, 1], [0, 1]] });
    expect(broadcastView([2, 6, 6, 8], [[2, 6, 6, 8], [2, 1, 1, 8]])).toEqual({ shape: [2, 36, 8], strides: [[288, 8, 1], [8, 0, 1]] });
    expect(broadcastView([2, 6, 6, 8], [[2, 6, 6, 8], [2, 6, 6, 8]])).toEqual({ shape: [576], strides: [[1], [1]] });
    expect(broadcastView([3, 5], [[], [3, 5]])).toEqual({ shape: [15], strides: [[0], [1]] });
    expect(broadcastView([6, 9], [[6, 1], [1, 9]])).toEqual({ shape: [6, 9], strides: [[1, 0], [0, 1]] });
    expect(broadcastView([1, 1], [[1, 1], []])).toEqual({ shape: [1], strides: [[0], [0]] });
    expect(broadcastView([2, 3, 4, 5], [[2, 3, 4, 5], [3, 1, 1]])).toEqual({ shape: [2, 3, 20], strides: [[60, 20, 1], [0, 1, 0]] });
  });
});

describe.skipIf(!load.ok)('element-wise kernels on the CUDA host build', () => {
  const SHAPES: Array<[number[], number[]]> = [
    [[2, 6, 6, 8], [2, 6, 6, 8]],
    [[3, 5, 7], [3, 5, 7]],
    [[2, 6, 6, 8], [8]],
    [[2, 6, 6, 8], [2, 1, 1, 8]],
    [[2, 6, 6, 8], []],
    [[], [3, 5, 7]],
    [[6, 1], [1, 9]],
    [[4, 6], [4, 1]],
    [[3, 5, 7], [7]],
    [[2, 3, 1, 4, 5], [3, 4, 1]],
    [[2, 3, 4, 5, 6, 7], [1, 3, 1, 5, 1, 7]],
  ];

  const FLOAT_BINARY: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
    [tf.Add, tf.add],
    [tf.Sub, tf.sub],
    [tf.Multiply, tf.mul],
    [tf.RealDiv, tf.div],
    [tf.FloorDiv, tf.floorDiv],
    [tf.Maximum, tf.maximum],
    [tf.Minimum, tf.minimum],
    [tf.Pow, tf.pow],
    [tf.SquaredDifference, tf.squaredDifference],
    [tf.Mod, tf.mod],
    [tf.Atan2, tf.atan2],
    [tf.Equal, tf.equal],
    [tf.NotEqual, tf.notEqual],
    [tf.Greater, tf.greater],
    [tf.GreaterEqual, tf.greaterEqual],
    [tf.Less, tf.less],
    [tf.LessEqual, tf.lessEqual],
  ];

  for (const [name, op] of FLOAT_BINARY) {
    it(`${name} on float32 broadcasts like the cpu`, async () => {
      for (const [sa, sb] of SHAPES) {
        const a = floats(sa, 3);
        const b = floats(sb, 3);
        await expectNative([name], () => op(tf.tensor(a, sa), tf.tensor(b, sb)));
      }
    });
  }

  it('exact IEEE ops give the cpu bits, signed zeros included', async () => {
    const shape = [5, 40];
    const a = floats(shape);
    const b = floats(shape);
    for (const [name, op] of [
      [tf.Add, tf.add],
      [tf.Sub, tf.sub],
      [tf.Multiply, tf.mul],
      [tf.RealDiv, tf.div],
      [tf.Maximum, tf.maximum],
      [tf.Minimum, tf.minimum],
      [tf.SquaredDifference, tf.squaredDifference],
    ] as const) {
      await expectBitExact([name], () => op(tf.tensor(a, shape), tf.tensor(b, shape)));
    }
    // tf.norm's square.
    await expectBitExact([tf.Pow], () => tf.pow(tf.tensor(a, shape), tf.scalar(2)));
  });

  it('int32 arithmetic: wraps, truncating division, floor division and modulo by zero give 0', async () => {
    const INT_BINARY: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor]> = [
      [tf.Add, tf.add],
      [tf.Sub, tf.sub],
      [tf.Multiply, tf.mul],
      [tf.FloorDiv, tf.floorDiv],
      [tf.Maximum, tf.maximum],
      [tf.Minimum, tf.minimum],
      [tf.SquaredDifference, tf.squaredDifference],
      [tf.Mod, tf.mod],
      [tf.Equal, tf.equal],
      [tf.Less, tf.less],
      [tf.GreaterEqual, tf.greaterEqual],
    ];
    for (const [name, op] of INT_BINARY) {
      for (const [sa, sb] of SHAPES.slice(0, 7)) {
        const a = ints(sa);
        const b = ints(sb);
        await expectNative([name], () => op(tf.tensor(a, sa, 'int32'), tf.tensor(b, sb, 'int32')), 0);
      }
    }
    const a = ints([4, 9]);
    const e = ints([4, 9], -3, 5);
    await expectNative([tf.Pow], () => tf.pow(tf.tensor(a, [4, 9], 'int32'), tf.tensor(e, [4, 9], 'int32')), 0);
    // tf.div sends int32 to FloorDiv; the kernel itself truncates like an Int32Array store.
    await expectNative([tf.RealDiv], () => tf.engine().runKernel(tf.RealDiv, { a: tf.tensor(a, [4, 9], 'int32'), b: tf.tensor(e, [4, 9], 'int32') }) as tf.Tensor, 0);
    const big = Int32Array.of(2 ** 31 - 1, -(2 ** 31), 65536, -46341);
    await expectNative([tf.Add, tf.Multiply], () => [tf.add(tf.tensor(big, [4], 'int32'), tf.scalar(1, 'int32')), tf.mul(tf.tensor(big, [4], 'int32'), tf.tensor(Int32Array.of(2, 1, 65536, 46341), [4], 'int32'))], 0);
  });

  it('comparisons and logic on bool tensors', async () => {
    for (const [sa, sb] of SHAPES.slice(0, 7)) {
      const a = bools(sa);
      const b = bools(sb);
      const ta = () => tf.tensor(a, sa, 'bool');
      const tb = () => tf.tensor(b, sb, 'bool');
      await expectNative([tf.Equal, tf.NotEqual, tf.Greater, tf.LogicalAnd, tf.LogicalOr], () => [
        tf.equal(ta(), tb()),
        tf.notEqual(ta(), tb()),
        tf.greater(ta(), tb()),
        tf.logicalAnd(ta(), tb()),
        tf.logicalOr(ta(), tb()),
      ], 0);
    }
    const x = bools([7, 9]);
    await expectNative([tf.LogicalNot], () => tf.logicalNot(tf.tensor(x, [7, 9], 'bool')), 0);
  });

  it('Prelu broadcasts alpha over channels', async () => {
    const x = floats([2, 5, 5, 8]);
    const alpha = floats([8], 0.3, false);
    await expectBitExact([tf.Prelu], () => tf.prelu(tf.tensor(x, [2, 5, 5, 8]), tf.tensor(alpha, [8])));
    await expectNative([tf.Prelu], () => tf.prelu(tf.tensor(x, [2, 5, 5, 8]), tf.scalar(0.25)));
  });

  const FLOAT_UNARY: Array<[string, (x: tf.Tensor) => tf.Tensor, number?]> = [
    [tf.Abs, tf.abs],
    [tf.Neg, tf.neg],
    [tf.Sqrt, tf.sqrt],
    [tf.Rsqrt, tf.rsqrt],
    [tf.Square, tf.square],
    [tf.Exp, tf.exp],
    [tf.Expm1, tf.expm1],
    [tf.Log, tf.log],
    [tf.Log1p, tf.log1p],
    [tf.Relu, tf.relu],
    [tf.Relu6, tf.relu6],
    [tf.Step, (x) => tf.step(x, 0.25)],
    [tf.Sign, tf.sign],
    [tf.Reciprocal, tf.reciprocal],
    [tf.Sigmoid, tf.sigmoid],
    [tf.Tanh, tf.tanh],
    [tf.Softplus, tf.softplus],
    [tf.Elu, tf.elu],
    [tf.LeakyRelu, (x) => tf.leakyRelu(x, 0.1)],
    [tf.Floor, tf.floor],
    [tf.Ceil, tf.ceil],
    [tf.Round, tf.round],
    [tf.IsNan, tf.isNaN],
    [tf.IsInf, tf.isInf],
    [tf.IsFinite, tf.isFinite],
    [tf.Erf, tf.erf],
    [tf.Sin, tf.sin],
    [tf.Cos, tf.cos],
    [tf.ClipByValue, (x) => tf.clipByValue(x, -0.7, 1.3)],
  ];

  for (const [name, op] of FLOAT_UNARY) {
    it(`${name} on float32 matches the cpu`, async () => {
      // 1003 elements: the vectorised body and a tail; large magnitudes reach softplus' and sigmoid's cut-offs.
      for (const scale of [1, 20]) {
        const x = floats([17, 59], scale);
        await expectNative([name], () => op(tf.tensor(x, [17, 59])));
      }
    });
  }

  it('piecewise ops give the cpu bits: NaN through Step and Relu, -0 to +0, half-way rounding to even', async () => {
    const x = Float32Array.from([...SPECIALS, -1.5, -3.5, 4.5, 0.49999997, -0.49999997, 2 ** 23 + 1, 6, 6.5, -7, ...floats([40], 4)]);
    for (const [name, op] of FLOAT_UNARY.filter(([n]) => [tf.Abs, tf.Neg, tf.Relu, tf.Relu6, tf.Step, tf.Sign, tf.LeakyRelu, tf.Floor, tf.Ceil, tf.Round, tf.ClipByValue, tf.Square].includes(n))) {
      await expectBitExact([name], () => op(tf.tensor(x)));
    }
  });

  it('int32 Abs, Neg, Sign, Square and Relu', async () => {
    const x = ints([9, 13], -1000, 1000);
    for (const [name, op] of [
      [tf.Abs, tf.abs],
      [tf.Neg, tf.neg],
      [tf.Sign, tf.sign],
      [tf.Square, tf.square],
      [tf.Relu, tf.relu],
    ] as const) {
      await expectNative([name], () => op(tf.tensor(x, [9, 13], 'int32')), 0);
    }
  });

  it('Cast between float32, int32 and bool as the cpu does', async () => {
    const f = Float32Array.from([...SPECIALS, 2.9, -2.9, 3e9, -3e9, 2 ** 31, 1e20, ...floats([30], 100)]);
    const i = ints([45], -3, 3);
    const b = bools([45]);
    await expectNative([tf.Cast], () => [tf.cast(tf.tensor(f), 'int32'), tf.cast(tf.tensor(f), 'bool'), tf.cast(tf.tensor(f), 'float32')], 0);
    await expectNative([tf.Cast], () => [tf.cast(tf.tensor(i, [45], 'int32'), 'bool'), tf.cast(tf.tensor(i, [45], 'int32'), 'int32')], 0);
    await expectNative([tf.Cast], () => [tf.cast(tf.tensor(b, [45], 'bool'), 'int32'), tf.cast(tf.tensor(b, [45], 'bool'), 'bool')], 0);
    // To float32 the cpu keeps the integer array (a float32 tensor reading back as an Int32Array);
    // the device converts. The values agree.
    for (const [values, dtype] of [[i, 'int32'], [b, 'bool']] as const) {
      const [ref] = await valuesOn('cpu', () => tf.cast(tf.tensor(values, [45], dtype), 'float32'));
      resetKernelStats();
      const [got] = await valuesOn(CUDA_HOST, () => tf.cast(tf.tensor(values, [45], dtype), 'float32'));
      expect(got).toBeInstanceOf(Float32Array);
      expect(Array.from(got!)).toEqual(Array.from(ref!));
      expect(nativeRuns.get(tf.Cast)).toBe(1);
    }
  });

  it('Fill, ZerosLike and OnesLike in every dtype; complex64 goes to the cpu', async () => {
    await expectNative([tf.Fill], () => [tf.fill([3, 7], 2.5), tf.fill([3, 7], -7.9, 'int32'), tf.fill([2, 2], 1, 'bool'), tf.fill([0, 4], 3)], 0);
    const x = floats([5, 9]);
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      await expectNative([tf.ZerosLike, tf.OnesLike], () => [tf.zerosLike(tf.cast(tf.tensor(x, [5, 9]), dtype)), tf.onesLike(tf.cast(tf.tensor(x, [5, 9]), dtype))], 0);
    }
    resetKernelStats();
    await expectSameAsCpu(() => tf.onesLike(tf.complex([1, 2], [3, 4])), 0);
    expect(fallbackRuns.get(tf.OnesLike)).toBe(1);
  });

  it('AddN sums any number of inputs in the cpu order, eight per pass', async () => {
    const shape = [3, 4, 11];
    const inputs = Array.from({ length: 19 }, () => floats(shape, 10, false));
    for (const k of [1, 3, 8, 9, 19]) {
      await expectBitExact([tf.AddN], () => tf.addN(inputs.slice(0, k).map((v) => tf.tensor(v, shape))));
    }
    const iv = Array.from({ length: 10 }, () => ints(shape, -100, 100));
    await expectNative([tf.AddN], () => tf.addN(iv.map((v) => tf.tensor(v, shape, 'int32'))), 0);
  });

  it('Select picks t where the condition is true, in float32, int32 and bool', async () => {
    const shape = [6, 7, 5];
    const c = bools(shape);
    const t = floats(shape);
    const e = floats(shape);
    const cond = () => tf.tensor(c, shape, 'bool');
    await expectBitExact([tf.Select], () => tf.where(cond(), tf.tensor(t, shape), tf.tensor(e, shape)));
    const [ti, ei, tb, eb] = [ints(shape), ints(shape), bools(shape), bools(shape)];
    await expectNative([tf.Select], () => [
      tf.where(cond(), tf.tensor(ti, shape, 'int32'), tf.tensor(ei, shape, 'int32')),
      tf.where(cond(), tf.tensor(tb, shape, 'bool'), tf.tensor(eb, shape, 'bool')),
    ], 0);
    // The cpu's rank-1 condition over rows stays with the cpu.
    resetKernelStats();
    const rows = () => tf.engine().runKernel(tf.Select, { condition: tf.tensor([1, 0], [2], 'bool'), t: tf.ones([2, 3]), e: tf.zeros([2, 3]) }) as tf.Tensor;
    await expectSameAsCpu(rows, 0);
    expect(fallbackRuns.get(tf.Select)).toBe(1);
  });

  it('empty tensors give empty outputs without launching anything', async () => {
    await expectNative([tf.Add, tf.Exp, tf.Cast, tf.Greater, tf.Select], () => {
      const a = tf.zeros([0, 3]);
      return [tf.add(a, tf.ones([3])), tf.exp(a), tf.cast(a, 'int32'), tf.greater(a, tf.scalar(0)), tf.where(tf.cast(a, 'bool'), a, a)];
    }, 0);
  });

  it('a broadcast past six merged dimensions goes to the cpu', async () => {
    const sa = [2, 2, 2, 2, 2, 2, 2];
    const sb = [2, 1, 2, 1, 2, 1, 2];
    const [a, b] = [floats(sa), floats(sb)];
    resetKernelStats();
    await expectSameAsCpu(() => tf.add(tf.tensor(a, sa), tf.tensor(b, sb)), 0);
    expect(fallbackRuns.get(tf.Add)).toBe(1);
  });

  it('pointers off 16-byte alignment take the element-by-element kernels', () => {
    const addon = hostAddon() as ReturnType<typeof hostAddon> & EltwiseAddon;
    const n = 203;
    const a = floats([n + 1], 1, false);
    const b = floats([n + 1], 1, false);
    const [pa, pb, pout] = [addon.alloc(4 * (n + 1)), addon.alloc(4 * (n + 1)), addon.alloc(4 * (n + 1))];
    try {
      addon.upload(pa, a);
      addon.upload(pb, b);
      const got = new Float32Array(n + 1);
      // Same shape, then [7, 29] + [29] broadcast: each from the second element of every buffer.
      addon.eltwiseBinary(BINARY.Add, 0, pa + 4, pb + 4, pout + 4, Int32Array.of(n), Int32Array.of(1), Int32Array.of(1));
      addon.download(pout, got);
      expect(Array.from(got.subarray(1))).toEqual(Array.from(a.subarray(1), (v, i) => Math.fround(v + b[i + 1]!)));
      addon.eltwiseBinary(BINARY.Multiply, 0, pa + 4, pb + 4, pout + 4, Int32Array.of(7, 29), Int32Array.of(29, 1), Int32Array.of(0, 1));
      addon.download(pout, got);
      expect(Array.from(got.subarray(1))).toEqual(Array.from(a.subarray(1), (v, i) => Math.fround(v * b[1 + (i % 29)]!)));
      addon.eltwiseUnary(UNARY.Neg, 0, pa + 4, pout + 4, n, 0, 0);
      addon.download(pout, got);
      expect(Array.from(got.subarray(1))).toEqual(Array.from(a.subarray(1), (v) => -v));
    } finally {
      for (const p of [pa, pb, pout]) addon.free(p);
    }
  });

  it('half-stored operands off pack alignment take the element-by-element kernels; storage an op does not take is an error', () => {
    const addon = hostAddon() as ReturnType<typeof hostAddon> & EltwiseAddon;
    const n = 203;
    const ah = float32ArrayToFloat16(floats([n + 1], 100));
    const a = float16ArrayToFloat32(ah);
    const b = floats([n + 1], 1, false);
    const [pa, pb, pout] = [addon.alloc(2 * (n + 1)), addon.alloc(4 * (n + 1)), addon.alloc(4 * (n + 1))];
    const same = (got: Float32Array, want: Float32Array) => expect(Array.from(new Uint32Array(got.buffer))).toEqual(Array.from(new Uint32Array(want.buffer)));
    try {
      addon.upload(pa, ah);
      addon.upload(pb, b);
      const got = new Float32Array(n);
      // Halves from their second element (2 bytes off), floats from their second (4 bytes off).
      addon.eltwiseBinary(BINARY.Add, 0, pa + 2, pb + 4, pout, Int32Array.of(n), Int32Array.of(1), Int32Array.of(1), STORAGE.halfA);
      addon.download(pout, got);
      same(got, Float32Array.from(a.subarray(1), (v, i) => v + b[i + 1]!));
      addon.eltwiseBinary(BINARY.Multiply, 0, pb + 4, pa + 2, pout, Int32Array.of(7, 29), Int32Array.of(29, 1), Int32Array.of(0, 1), STORAGE.halfB);
      addon.download(pout, got);
      same(got, Float32Array.from(b.subarray(1), (v, i) => v * a[1 + (i % 29)]!));
      addon.eltwiseUnary(UNARY.Square, 0, pa + 2, pout, n, 0, 0, STORAGE.halfIn);
      addon.download(pout, got);
      same(got, Float32Array.from(a.subarray(1), (v) => v * v));
      expect(() => addon.eltwiseBinary(BINARY.Atan2, 0, pa, pb, pout, Int32Array.of(n), Int32Array.of(1), Int32Array.of(1), STORAGE.halfA)).toThrow(/does not read halves/);
      expect(() => addon.eltwiseBinary(BINARY.Add, 1, pa, pb, pout, Int32Array.of(n), Int32Array.of(1), Int32Array.of(1), STORAGE.halfA)).toThrow(/does not take dtype/);
      expect(() => addon.eltwiseUnary(UNARY.Exp, 0, pa, pout, n, 0, 0, STORAGE.halfIn)).toThrow(/does not read halves/);
      // Square leaves the half grid: no half output.
      expect(() => addon.eltwiseUnary(UNARY.Square, 0, pa, pout, n, 0, 0, STORAGE.halfIn | STORAGE.halfOut)).toThrow(/does not take storage/);
    } finally {
      for (const p of [pa, pb, pout]) addon.free(p);
    }
  });

  it('negativeCosine and its gradient match the cpu, with no element-wise kernel on the host', async () => {
    const p = floats([16, 64], 1, false);
    const z = floats([16, 64], 1, false);
    resetKernelStats();
    await expectSameAsCpu(() => {
      const pt = tf.tensor2d(p, [16, 64]);
      const zt = tf.tensor2d(z, [16, 64]);
      const { value, grad } = tf.valueAndGrad((q: tf.Tensor) => negativeCosine(q as tf.Tensor2D, zt))(pt);
      return [value, grad];
    }, 1e-5);
    const eltwiseFallbacks = [...fallbackRuns.keys()].filter((k) => k in ELTWISE_KERNELS);
    expect(eltwiseFallbacks).toEqual([]);
    expect(nativeRuns.get(tf.Multiply)).toBeGreaterThan(0);
    expect(nativeRuns.get(tf.RealDiv)).toBeGreaterThan(0);
  });
});
