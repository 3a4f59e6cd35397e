// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { relativeError, useCpuBackend } from '../helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { cosineSimilarity, negativeCosine, simsiamLoss } from '../../src/method/losses.js';
import type { SimSiam } from '../../src/method/simsiam.js';
import { stopGradient } from '../../src/method/stop_gradient.js';
import { buildSslModel, type SslModel } from '../../src/model/build.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const rows = (data: Float32Array | number[], n: number, d: number): number[][] =>
  Array.from({ length: n }, (_, i) => Array.from(data.slice(i * d, (i + 1) * d)));
const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
const maxAbs = (x: ArrayLike<number>): number => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

function randn(shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => rng.normal()), shape);
}

describe('stopGradient (a): identity forward, zero backward', () => {
  it('passes values through unchanged', () => {
    const x = tf.tensor2d([[1.5, -2, 3], [0, 4e-7, -1e6]]);
    const y = stopGradient(x);
    expect(y.shape).toEqual([2, 3]);
    expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
    tf.dispose([x, y]);
  });

  it('d/dx sum(stopGradient(x) * w) is exactly 0 while d/dw is exactly x', () => {
    const rng = new Rng(1, 'sg-a');
    const x = randn([3, 5], rng);
    const w = randn([3, 5], rng);
    const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(stopGradient(a), b)))([x, w]);
    expect(gx!.shape).toEqual([3, 5]);
    expect(Array.from(gx!.dataSync()).every((v) => v === 0)).toBe(true);
    expect(Array.from(gw!.dataSync())).toEqual(Array.from(x.dataSync()));
    // Control: without the stop, d/dx is w, so the zero above is the op's doing.
    const [hx] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(a, b)))([x, w]);
    expect(Array.from(hx!.dataSync())).toEqual(Array.from(w.dataSync()));
    tf.dispose([x, w, gx!, gw!, hx!]);
  });

  it('blocks only its own path: x used twice keeps the gradient of the unstopped use', () => {
    const x = tf.tensor1d([1, 2, 3]);
    // f = sum(x * sg(x)): d/dx = sg(x) = x (the product rule's second term is stopped), not 2x.
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(a, stopGradient(a))))(x);
    expect(Array.from(g.dataSync())).toEqual([1, 2, 3]);
    tf.dispose([x, g]);
  });
});

describe('stopGradient (b): in simsiamLoss the gradient reaches z only through p', () => {
  const N = 4;
  const DIN = 5;
  const D = 6;
  let x1: tf.Tensor, x2: tf.Tensor, wz: tf.Tensor, wp: tf.Tensor;
  let z1: tf.Tensor2D, z2: tf.Tensor2D, p1: tf.Tensor2D, p2: tf.Tensor2D;
  let Z1: number[][], Z2: number[][], P1: number[][], P2: number[][], WP: number[][];
  let expected1: number[][], expected2: number[][];
  const f = (x: tf.Tensor): tf.Tensor2D => tf.tanh(tf.matMul(x, wz)) as tf.Tensor2D; // theta_z
  const h = (z: tf.Tensor): tf.Tensor2D => tf.matMul(z, wp) as tf.Tensor2D; // theta_p

  /** d(-mean_i cos(p_i, z_i))/dp, float64. */
  function dNegCosDp(P: number[][], Z: number[][]): number[][] {
    return P.map((p, i) => {
      const z = Z[i]!;
      const np = Math.hypot(...p);
      const nz = Math.hypot(...z);
      const c = dot(p, z) / (np * nz);
      return p.map((pk, k) => -(z[k]! / (np * nz) - (c * pk) / (np * np)) / N);
    });
  }
  /** G Wp^T: back through p = z Wp. */
  const throughP = (G: number[][]): number[][] => G.map((g) => WP.map((wrow) => dot(wrow, g)));
  const add = (a: number[][], b: number[][]): number[][] => a.map((r, i) => r.map((v, k) => v + b[i]![k]!));
  const half = (a: number[][]): number[][] => a.map((r) => r.map((v) => v / 2));

  beforeAll(() => {
    const rng = new Rng(7, 'sg-b');
    x1 = randn([N, DIN], rng);
    x2 = randn([N, DIN], rng);
    wz = randn([DIN, D], rng);
    wp = randn([D, D], rng);
    z1 = f(x1);
    z2 = f(x2);
    p1 = h(z1);
    p2 = h(z2);
    Z1 = rows(z1.dataSync() as Float32Array, N, D);
    Z2 = rows(z2.dataSync() as Float32Array, N, D);
    P1 = rows(p1.dataSync() as Float32Array, N, D);
    P2 = rows(p2.dataSync() as Float32Array, N, D);
    WP = rows(wp.dataSync() as Float32Array, D, D);
    // L = D(p1, z2)/2 + D(p2, z1)/2 with p = h(z). With the stop, only p carries gradient to z:
    //   dL/dz1 = (dD(p1,z2)/dp1 / 2) Wp^T.
    expected1 = throughP(half(dNegCosDp(P1, Z2)));
    expected2 = throughP(half(dNegCosDp(P2, Z1)));
  });
  afterAll(() => tf.dispose([x1, x2, wz, wp, z1, z2, p1, p2]));

  const lossOfZ = (a: tf.Tensor, b: tf.Tensor): tf.Scalar => simsiamLoss(h(a), h(b), a as tf.Tensor2D, b as tf.Tensor2D);

  it('tf.grads of simsiamLoss w.r.t. z1, z2 equals the analytic gradient through p only', () => {
    const [g1, g2] = tf.grads(lossOfZ)([z1, z2]);
    expect(relativeError(g1!.dataSync(), expected1.flat())).toBeLessThan(1e-5);
    expect(relativeError(g2!.dataSync(), expected2.flat())).toBeLessThan(1e-5);
    tf.dispose([g1!, g2!]);
  });

  it('without the stop-gradient the gradient picks up the direct term through z and differs', () => {
    const noStop = (p: tf.Tensor2D, z: tf.Tensor2D): tf.Scalar => tf.neg(tf.mean(cosineSimilarity(p, z))) as tf.Scalar;
    const naive = (a: tf.Tensor, b: tf.Tensor): tf.Scalar =>
      tf.add(tf.mul(noStop(h(a), b as tf.Tensor2D), 0.5), tf.mul(noStop(h(b), a as tf.Tensor2D), 0.5)) as tf.Scalar;
    const [n1, n2] = tf.grads(naive)([z1, z2]);
    // The extra term is d(D(p2, z1))/dz1 / 2 (cosine is symmetric: the same formula with roles swapped).
    const direct1 = half(dNegCosDp(Z1, P2));
    const direct2 = half(dNegCosDp(Z2, P1));
    expect(relativeError(n1!.dataSync(), add(expected1, direct1).flat())).toBeLessThan(1e-5);
    expect(relativeError(n2!.dataSync(), add(expected2, direct2).flat())).toBeLessThan(1e-5);
    expect(relativeError(n1!.dataSync(), expected1.flat())).toBeGreaterThan(0.05);
    expect(relativeError(n2!.dataSync(), expected2.flat())).toBeGreaterThan(0.05);
    tf.dispose([n1!, n2!]);
  });

  it('theta_z gets its gradient only through the predictor path', () => {
    // Gradient w.r.t. Wz with z inside the tape equals that with the targets z as constants.
    const withStop = tf.grad((w: tf.Tensor) => {
      const a = tf.tanh(tf.matMul(x1, w)) as tf.Tensor2D;
      const b = tf.tanh(tf.matMul(x2, w)) as tf.Tensor2D;
      return simsiamLoss(h(a), h(b), a, b);
    })(wz);
    const constTargets = tf.grad((w: tf.Tensor) => {
      const a = tf.tanh(tf.matMul(x1, w)) as tf.Tensor2D;
      const b = tf.tanh(tf.matMul(x2, w)) as tf.Tensor2D;
      return simsiamLoss(h(a), h(b), z1, z2);
    })(wz);
    expect(relativeError(withStop.dataSync(), constTargets.dataSync())).toBeLessThan(1e-6);
    tf.dispose([withStop, constTargets]);
  });
});

describe('stopGradient (c): the target branch of a full SimSiam model gets no gradient', () => {
  const config = ConfigSchema.parse({
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { proj_dim: 16, proj_hidden: 16, pred_hidden: 4, proj_layers: 2 },
  });
  let model: SslModel;
  let method: SimSiam;
  let x1: tf.Tensor4D;
  let x2: tf.Tensor4D;
  beforeAll(() => {
    model = buildSslModel(config.model, config.method, 3);
    method = model.method as SimSiam;
    x1 = tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
    x2 = tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', 12) as tf.Tensor4D;
  });
  afterAll(() => {
    tf.dispose([x1, x2]);
    model.store.dispose();
  });

  it('d negativeCosine(p, z_target) / d z_target is exactly zero, and not so without the stop', () => {
    const { p, z } = tf.tidy(() => {
      const a = method.embed(x1);
      const b = method.embed(x2);
      tf.dispose(a.z);
      return { p: a.p, z: b.z };
    });
    expect(p.shape).toEqual([4, 16]);
    expect(z.shape).toEqual([4, 16]);
    const [gp, gz] = tf.grads((pp: tf.Tensor, zz: tf.Tensor) => negativeCosine(pp as tf.Tensor2D, zz as tf.Tensor2D))([p, z]);
    expect(Array.from(gz!.dataSync()).every((v) => v === 0)).toBe(true);
    expect(maxAbs(gp!.dataSync())).toBeGreaterThan(1e-4);
    const gNaive = tf.grad((zz: tf.Tensor) => tf.neg(tf.mean(cosineSimilarity(p, zz as tf.Tensor2D))))(z);
    expect(maxAbs(gNaive.dataSync())).toBeGreaterThan(1e-4);
    tf.dispose([p, z, gp!, gz!, gNaive]);
  });

  it('the SimSiam loss gradient on every parameter equals the one with the targets z1, z2 as constants', () => {
    const vars = model.store.trainable().map((q) => q.variable);
    // Targets computed outside any tape: plain data.
    const [z1c, z2c] = tf.tidy(() => {
      const a = method.embed(x1);
      const b = method.embed(x2);
      return [a.z, b.z];
    });
    const stopped = tf.variableGrads(() => method.step([x1, x2]).loss, vars);
    const constant = tf.variableGrads(() => {
      const a = method.embed(x1);
      const b = method.embed(x2);
      return simsiamLoss(a.p, b.p, z1c!, z2c!);
    }, vars);
    const naive = tf.variableGrads(() => {
      const a = method.embed(x1);
      const b = method.embed(x2);
      const d = (p: tf.Tensor2D, z: tf.Tensor2D): tf.Tensor => tf.neg(tf.mean(cosineSimilarity(p, z)));
      return tf.add(tf.mul(d(a.p, b.z), 0.5), tf.mul(d(b.p, a.z), 0.5)) as tf.Scalar;
    }, vars);
    expect(stopped.value.dataSync()[0]).toBeCloseTo(constant.value.dataSync()[0]!, 6);
    const names = Object.keys(constant.grads);
    expect(names.length).toBe(vars.length);
    expect(Object.keys(stopped.grads).sort()).toEqual([...names].sort());
    let differs = 0;
    for (const name of names) {
      const a = stopped.grads[name]!.dataSync();
      const b = constant.grads[name]!.dataSync();
      const err = maxAbs(b) === 0 ? maxAbs(a) : relativeError(a, b);
      expect(err, name).toBeLessThan(1e-4);
      // The backbone and projector are where the missing stop would show.
      if (!name.startsWith('predictor') && relativeError(naive.grads[name]!.dataSync(), b) > 1e-2) differs++;
    }
    expect(differs).toBeGreaterThan(0);
    tf.dispose([z1c!, z2c!, stopped.value, constant.value, naive.value]);
    tf.dispose([...Object.values(stopped.grads), ...Object.values(constant.grads), ...Object.values(naive.grads)]);
  });
});
