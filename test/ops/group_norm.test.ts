/**
 * groupNorm: forward against a float64 JS reference, gradients (input, gamma, beta) against central
 * finite differences of that reference.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { loadNative } from '../../src/engine/onednn/native.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { GROUP_NORM, GROUP_NORM_GRAD } from '../../src/engine/custom_kernels.js';
import { groupNorm } from '../../src/ops/group_norm.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';

beforeAll(useCpuBackend);

function randomValues(n: number, seed: string, scale = 1, offset = 0): Float64Array {
  const rng = new Rng('group-norm-test', seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + scale * rng.normal();
  return out;
}

/** Float64 GroupNorm over NHWC with the biased variance. */
function reference(x: Float64Array, shape: number[], gamma: Float64Array, beta: Float64Array, groups: number, eps: number): Float64Array {
  const [n, h, w, c] = shape as [number, number, number, number];
  const cg = c / groups;
  const out = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let g = 0; g < groups; g++) {
      const idx: number[] = [];
      for (let p = 0; p < h * w; p++) for (let k = 0; k < cg; k++) idx.push((b * h * w + p) * c + g * cg + k);
      const mean = idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
      const v = idx.reduce((s, i) => s + (x[i]! - mean) ** 2, 0) / idx.length;
      for (const i of idx) out[i] = ((x[i]! - mean) / Math.sqrt(v + eps)) * gamma[i % c]! + beta[i % c]!;
    }
  }
  return out;
}

const cases = [
  { name: 'two groups', shape: [2, 3, 2, 4], groups: 2, offset: 0 },
  { name: 'one channel per group, offset input', shape: [1, 2, 3, 3], groups: 3, offset: 5 },
  { name: '32 groups of 2', shape: [1, 2, 2, 64], groups: 32, offset: 0 },
];

describe.each(cases)('groupNorm ($name)', ({ name, shape, groups, offset }) => {
  const size = shape.reduce((a, b) => a * b, 1);
  const c = shape[3]!;
  const x = randomValues(size, `${name}/x`, 2, offset);
  const gamma = randomValues(c, `${name}/gamma`, 0.5, 1);
  const beta = randomValues(c, `${name}/beta`, 0.5);
  const eps = 1e-5;

  it('matches the float64 reference', async () => {
    const y = groupNorm(tf.tensor4d(Float32Array.from(x), shape as [number, number, number, number]), tf.tensor1d(Float32Array.from(gamma)), tf.tensor1d(Float32Array.from(beta)), groups, eps);
    expect(y.shape).toEqual(shape);
    expect(relativeError(await y.data(), reference(x, shape, gamma, beta, groups, eps))).toBeLessThan(1e-5);
  });

  it('has gradients matching central finite differences', async () => {
    const r = randomValues(size, `${name}/upstream`);
    const loss = (xv: Float64Array, gv: Float64Array, bv: Float64Array) =>
      reference(xv, shape, gv, bv, groups, eps).reduce((s, v, i) => s + v * r[i]!, 0);
    const grads = tf.grads((xt: tf.Tensor, gt: tf.Tensor, bt: tf.Tensor) =>
      tf.sum(tf.mul(groupNorm(xt as tf.Tensor4D, gt, bt, groups, eps), tf.tensor(Float32Array.from(r), shape))),
    );
    const [dx, dg, db] = grads([tf.tensor(Float32Array.from(x), shape), tf.tensor1d(Float32Array.from(gamma)), tf.tensor1d(Float32Array.from(beta))]);
    const h = 1e-6;
    const fd = (arr: Float64Array, f: (a: Float64Array) => number) =>
      Float64Array.from(arr, (v, i) => {
        const p = Float64Array.from(arr);
        p[i] = v + h;
        const up = f(p);
        p[i] = v - h;
        return (up - f(p)) / (2 * h);
      });
    const fdx = fd(x, (a) => loss(a, gamma, beta));
    const fdg = fd(gamma, (a) => loss(x, a, beta));
    const fdb = fd(beta, (a) => loss(x, gamma, a));
    expect(relativeError(await dx!.data(), fdx)).toBeLessThan(1e-3);
    expect(relativeError(await dg!.data(), fdg)).toBeLessThan(1e-4);
    expect(relativeError(await db!.data(), fdb)).toBeLessThan(1e-4);
  });
});

describe('groupNorm', () => {
  it('rejects channel counts that do not split into the groups', () => {
    expect(() => groupNorm(tf.zeros([1, 1, 1, 6]) as tf.Tensor4D, tf.ones([6]), tf.zeros([6]), 4)).toThrow(/do not split/);
  });

  it('leaves no tensors behind', () => {
    const x = tf.randomNormal([1, 2, 2, 4]) as tf.Tensor4D;
    const g = tf.ones([4]);
    const b = tf.zeros([4]);
    const before = tf.memory().numTensors;
    const y = groupNorm(x, g, b, 2);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, g, b, y]);
  });
});

const onednn = await loadOnednn();
const native = loadNative();
const nativeGn = native.ok && typeof native.addon.groupNormForward === 'function';
const skipReason = !onednn.ok
  ? `${onednn.reason} (${onednn.hint})`
  : !nativeGn
    ? 'the built addon predates native/onednn/group_norm.cc (run node scripts/build-native.mjs)'
    : '';
if (skipReason) console.warn(`native groupNorm tests skipped: ${skipReason}`);

describe.skipIf(!!skipReason)('groupNorm native onednn kernels match the composed ops', () => {
  /** y, dx, dgamma, dbeta of sum(groupNorm(x) * r) on the current backend. */
  function run(shape: number[], groups: number, seed: string, offset = 0): Record<'y' | 'dx' | 'dgamma' | 'dbeta', Float32Array> {
    const size = shape.reduce((a, b) => a * b, 1);
    const c = shape[3]!;
    return tf.tidy(() => {
      const x = tf.tensor(Float32Array.from(randomValues(size, `${seed}/x`, 3, offset)), shape) as tf.Tensor4D;
      const g = tf.tensor1d(Float32Array.from(randomValues(c, `${seed}/g`, 0.5, 1)));
      const b = tf.tensor1d(Float32Array.from(randomValues(c, `${seed}/b`, 0.5)));
      const r = tf.tensor(Float32Array.from(randomValues(size, `${seed}/r`)), shape);
      const f = (xt: tf.Tensor, gt: tf.Tensor, bt: tf.Tensor) => tf.sum(tf.mul(groupNorm(xt as tf.Tensor4D, gt, bt, groups, 1e-5), r));
      const [dx, dg, db] = tf.grads(f)([x, g, b]);
      return {
        y: groupNorm(x, g, b, groups, 1e-5).dataSync() as Float32Array,
        dx: dx!.dataSync() as Float32Array,
        dgamma: dg!.dataSync() as Float32Array,
        dbeta: db!.dataSync() as Float32Array,
      };
    });
  }

  const cases = [
    { name: 'BiT-like, 32 groups', shape: [2, 8, 8, 64], groups: 32 },
    { name: 'batch 1, one channel per group', shape: [1, 5, 3, 6], groups: 6 },
    { name: 'one group (layer norm)', shape: [3, 4, 4, 5], groups: 1 },
    { name: 'mean far from zero', shape: [2, 4, 4, 8], groups: 2, offset: 40 },
  ];
  for (const c of cases) {
    it(`forward and gradients: ${c.name} [${c.shape.join(',')}]`, async () => {
      await useCpuBackend();
      const want = run(c.shape, c.groups, c.name, c.offset);
      await tf.setBackend('onednn');
      const before = { fwd: nativeRuns.get(GROUP_NORM) ?? 0, bwd: nativeRuns.get(GROUP_NORM_GRAD) ?? 0 };
      const got = run(c.shape, c.groups, c.name, c.offset);
      expect((nativeRuns.get(GROUP_NORM) ?? 0) - before.fwd, 'native forward runs').toBe(2);
      expect((nativeRuns.get(GROUP_NORM_GRAD) ?? 0) - before.bwd, 'native backward runs').toBe(1);
      for (const key of ['y', 'dx', 'dgamma', 'dbeta'] as const) expect(relativeError(got[key], want[key]), key).toBeLessThan(1e-4);
      await useCpuBackend();
    });
  }

  it('adds exactly its output and leaks nothing under gradients', async () => {
    await tf.setBackend('onednn');
    const x = tf.randomNormal([2, 3, 3, 8]) as tf.Tensor4D;
    const g = tf.variable(tf.ones([8]), true, 'gn-leak-gamma');
    const b = tf.variable(tf.zeros([8]), true, 'gn-leak-beta');
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        tf.variableGrads(() => tf.sum(tf.square(groupNorm(x, g, b, 4))) as tf.Scalar);
      });
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    const before = tf.memory().numTensors;
    const y = groupNorm(x, g, b, 4);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([x, g, b, y]);
    await useCpuBackend();
  });
});
