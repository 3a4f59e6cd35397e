// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { relativeError, useCpuBackend } from '../helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { augmentViews } from '../../src/data/augment.js';
import { makeSynthetic } from '../../src/data/synthetic.js';
import { tf } from '../../src/engine/tf.js';
import { cosineSimilarity, simtripletLoss } from '../../src/method/losses.js';
import { needsNeighbours } from '../../src/method/method.js';
import { SimTriplet } from '../../src/method/simtriplet.js';
import { buildSslModel, type SslModel } from '../../src/model/build.js';
import { Sgd } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';
import { dot, refD, refDGrad, randMat, t2, type Mat } from './reference.js';

beforeAll(useCpuBackend);

const scale = (m: Mat, f: number): Mat => m.map((r) => r.map((v) => v * f));
const read = (t: tf.Tensor): number => t.dataSync()[0]!;

function tripletOf(mats: Mat[]): ReturnType<typeof simtripletLoss> {
  const [p1, p2, p3, z1, z2, z3] = mats.map(t2) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  return simtripletLoss([p1, p2, p3], [z1, z2, z3]);
}

describe('simtripletLoss', () => {
  const rng = new Rng(21, 'triplet');
  const [p1, p2, p3, z1, z2, z3] = [0, 1, 2, 3, 4, 5].map(() => randMat(6, 5, rng)) as [Mat, Mat, Mat, Mat, Mat, Mat];

  it('equals D(p1,z2)/2 + D(p2,z1)/2 + D(p1,z3)/2 + D(p3,z1)/2, with inter and intra parts', () => {
    const { loss, inter, intra } = tripletOf([p1, p2, p3, z1, z2, z3]);
    const eInter = refD(p1, z2) / 2 + refD(p2, z1) / 2;
    const eIntra = refD(p1, z3) / 2 + refD(p3, z1) / 2;
    expect(read(inter)).toBeCloseTo(eInter, 6);
    expect(read(intra)).toBeCloseTo(eIntra, 6);
    expect(read(loss)).toBeCloseTo(eInter + eIntra, 6);
    // The parts are not interchangeable on this data: a swapped labelling would be caught.
    expect(Math.abs(eInter - eIntra)).toBeGreaterThan(0.02);
  });

  it('on a small hand-computed case', () => {
    // Rows along the axes, so every cosine is 0, 1 or -1 and the value can be worked out by hand.
    const e1 = [1, 0];
    const e2 = [0, 1];
    const neg = (v: number[]) => v.map((x) => -x);
    // Row 0: cos(p1,z2)=1, cos(p2,z1)=1, cos(p1,z3)=0, cos(p3,z1)=-1.
    // Row 1: cos(p1,z2)=0, cos(p2,z1)=-1, cos(p1,z3)=1, cos(p3,z1)=1.
    const P1 = [e1, [3, 0]];
    const P2 = [[0, 2], neg(e2)];
    const P3 = [neg(e2), [0, 5]];
    const Z1 = [e2, e2];
    const Z2 = [[4, 0], e2];
    const Z3 = [e2, e1];
    const { loss, inter, intra } = tripletOf([P1, P2, P3, Z1, Z2, Z3]);
    // inter = -(mean(1, 0) + mean(1, -1)) / 2 = -0.25; intra = -(mean(0, 1) + mean(-1, 1)) / 2 = -0.25.
    expect(read(inter)).toBeCloseTo(-0.25, 6);
    expect(read(intra)).toBeCloseTo(-0.25, 6);
    expect(read(loss)).toBeCloseTo(-0.5, 6);
  });

  it('lies in [-2, 2]: -2 when every compared pair is aligned, +2 when every one is opposite', () => {
    for (let trial = 0; trial < 5; trial++) {
      const m = [0, 1, 2, 3, 4, 5].map(() => randMat(4, 3, rng));
      const v = read(tripletOf(m).loss);
      expect(v).toBeGreaterThanOrEqual(-2);
      expect(v).toBeLessThanOrEqual(2);
    }
    const z = randMat(4, 3, rng);
    expect(read(tripletOf([scale(z, 2), scale(z, 0.5), z, z, scale(z, 3), z]).loss)).toBeCloseTo(-2, 6);
    expect(read(tripletOf([scale(z, -2), scale(z, -1), scale(z, -1), z, z, z]).loss)).toBeCloseTo(2, 6);
  });

  it('never compares the neighbour with the second view: d/dp2 and d/dp3 involve only z1', () => {
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      simtripletLoss([a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D], [t2(z1), t2(z2), t2(z3)]).loss;
    const [g1, g2, g3] = tf.grads(f)([t2(p1), t2(p2), t2(p3)]);
    const half = (m: Mat): number[] => m.flat().map((v) => v / 2);
    // p1 is compared with the neighbour and with the second view ...
    const e1 = refDGrad(p1, z2).map((r, i) => r.map((v, k) => (v + refDGrad(p1, z3)[i]![k]!) / 2));
    expect(relativeError(g1!.dataSync(), e1.flat())).toBeLessThan(1e-5);
    // ... p2 (neighbour) and p3 (second view) only with the anchor's z1.
    expect(relativeError(g2!.dataSync(), half(refDGrad(p2, z1)))).toBeLessThan(1e-5);
    expect(relativeError(g3!.dataSync(), half(refDGrad(p3, z1)))).toBeLessThan(1e-5);
    // Control: a loss that also compared (p2, z3) would have another gradient for p2.
    const withPair = half(refDGrad(p2, z1)).map((v, i) => v + refDGrad(p2, z3).flat()[i]! / 2);
    expect(relativeError(withPair, half(refDGrad(p2, z1)))).toBeGreaterThan(0.1);
    tf.dispose([g1!, g2!, g3!]);
  });

  it('stops the gradient on every z: through p only', () => {
    // p = z Wp, with the loss as a function of z1..z3: the stopped gradient is (dL/dp) Wp^T.
    const wp = randMat(5, 5, rng);
    const W = t2(wp);
    const h = (z: tf.Tensor): tf.Tensor2D => tf.matMul(z, W) as tf.Tensor2D;
    const lossOfZ = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
      simtripletLoss([h(a), h(b), h(c)], [a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D]).loss;
    const [g1, g2, g3] = tf.grads(lossOfZ)([t2(z1), t2(z2), t2(z3)]);
    const P = [z1, z2, z3].map((z) => z.map((row) => wp[0]!.map((_, k) => dot(row, wp.map((r) => r[k]!)))));
    const back = (G: Mat): number[] => G.flatMap((g) => wp.map((wrow) => dot(wrow, g)));
    const [P1, P2, P3] = P as [Mat, Mat, Mat];
    const dP1 = refDGrad(P1, z2).map((r, i) => r.map((v, k) => (v + refDGrad(P1, z3)[i]![k]!) / 2));
    expect(relativeError(g1!.dataSync(), back(dP1))).toBeLessThan(1e-4);
    expect(relativeError(g2!.dataSync(), back(scale(refDGrad(P2, z1), 0.5)))).toBeLessThan(1e-4);
    expect(relativeError(g3!.dataSync(), back(scale(refDGrad(P3, z1), 0.5)))).toBeLessThan(1e-4);
    // Without the stop, z1 would also receive the direct terms of D(p2, z1) and D(p3, z1).
    const naive = tf.grad((a: tf.Tensor) => {
      const d = (p: tf.Tensor2D, z: tf.Tensor2D) => tf.neg(tf.mean(cosineSimilarity(p, z)));
      return tf.div(tf.addN([d(h(a), t2(z2)), d(h(t2(z2)), a as tf.Tensor2D), d(h(a), t2(z3)), d(h(t2(z3)), a as tf.Tensor2D)]), 2) as tf.Scalar;
    })(t2(z1));
    expect(relativeError(naive.dataSync(), g1!.dataSync())).toBeGreaterThan(0.05);
    tf.dispose([W, g1!, g2!, g3!, naive]);
  });
});

describe('SimTriplet on a tiny ResNet', () => {
  const config = ConfigSchema.parse({
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { name: 'simtriplet', proj_dim: 16, proj_hidden: 16, pred_hidden: 4, proj_layers: 2 },
  });
  let model: SslModel;
  let method: SimTriplet;
  let xs: tf.Tensor4D[];
  beforeAll(() => {
    model = buildSslModel(config.model, config.method, 5);
    method = model.method as SimTriplet;
    xs = [21, 22, 23].map((s) => tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', s) as tf.Tensor4D);
  });
  afterAll(() => {
    tf.dispose(xs);
    model.store.dispose();
  });

  it('takes anchor, neighbour and second anchor view, and shares SimSiam\'s parameter names', () => {
    expect(method).toBeInstanceOf(SimTriplet);
    expect(method.viewSources).toEqual(['item', 'neighbour', 'item']);
    expect(needsNeighbours(method)).toBe(true);
    const names = model.store.list().map((p) => p.name);
    const simsiam = buildSslModel(config.model, { ...config.method, name: 'simsiam' }, 5);
    expect(names).toEqual(simsiam.store.list().map((p) => p.name));
    simsiam.store.dispose();
  });

  it('step: loss = loss_inter + loss_intra of the separately embedded views, in [-2, 2]', () => {
    const out = method.step(xs);
    const [a, n, b] = xs.map((x) => method.embed(x));
    const ref = simtripletLoss([a!.p, n!.p, b!.p], [a!.z, n!.z, b!.z]);
    expect(Object.keys(out.terms).sort()).toEqual(['loss_inter', 'loss_intra']);
    expect(read(out.terms.loss_inter!)).toBeCloseTo(read(ref.inter), 5);
    expect(read(out.terms.loss_intra!)).toBeCloseTo(read(ref.intra), 5);
    expect(read(out.loss)).toBeCloseTo(read(out.terms.loss_inter!) + read(out.terms.loss_intra!), 5);
    expect(Math.abs(read(out.loss))).toBeLessThanOrEqual(2);
    expect(read(out.collapseStd!)).toBeGreaterThan(0);
    expect(() => method.step(xs.slice(0, 2))).toThrow(/3 views, got 2/);
    tf.dispose([out.loss, out.collapseStd!, ...Object.values(out.terms), a!.p, a!.z, n!.p, n!.z, b!.p, b!.z, ref.loss, ref.inter, ref.intra]);
  });

  it('every parameter gets the gradient it would get with z1, z2, z3 as constants (stop-gradient)', () => {
    const vars = model.store.trainable().map((p) => p.variable);
    const targets = tf.tidy(() => xs.map((x) => method.embed(x).z));
    const stopped = tf.variableGrads(() => method.step(xs).loss, vars);
    const constant = tf.variableGrads(() => {
      const [a, n, b] = xs.map((x) => method.embed(x));
      return simtripletLoss([a!.p, n!.p, b!.p], targets as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]).loss;
    }, vars);
    for (const name of Object.keys(constant.grads)) {
      const g = constant.grads[name]!.dataSync();
      const scaleOf = Math.sqrt(g.reduce((s, v) => s + v * v, 0));
      if (scaleOf > 1e-7) expect(relativeError(stopped.grads[name]!.dataSync(), g), name).toBeLessThan(1e-4);
    }
    tf.dispose([...targets, stopped.value, constant.value, ...Object.values(stopped.grads), ...Object.values(constant.grads)]);
  });
});

describe('SimTriplet training steps on fake neighbour data', () => {
  it('decrease the loss on a fixed batch, and keep the tensor count flat', () => {
    const config = ConfigSchema.parse({
      model: { arch: 'resnet18', stem: 'cifar', width: 4 },
      method: { name: 'simtriplet', proj_dim: 16, proj_hidden: 16, pred_hidden: 8, proj_layers: 2 },
    });
    const model = buildSslModel(config.model, config.method, 2);
    const sgd = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 0, decayNormAndBias: true });
    const ds = makeSynthetic({ size: 8, count: 6, seed: 4, split: 'train' });
    const anchors = Int32Array.from({ length: 6 }, (_, i) => i);
    // Fake neighbours: pairs (0,1), (2,3), ...
    const neighbours = anchors.map((i) => i ^ 1);
    const views = augmentViews(ds, [anchors, neighbours, anchors], 8, config.data.augment, 'imagenet', { seed: 1, epoch: 0 });
    const losses: number[] = [];
    const tensors: number[] = [];
    for (let s = 0; s < 5; s++) {
      const out = trainStep(model.method, model.store, sgd, views, 8, () => 0.05);
      losses.push(out.loss);
      expect(out.loss).toBeCloseTo(out.terms.loss_inter! + out.terms.loss_intra!, 5);
      tensors.push(tf.memory().numTensors);
    }
    expect(losses[4]!).toBeLessThan(losses[0]! - 0.05);
    expect(new Set(tensors.slice(1)).size).toBe(1);
    sgd.dispose();
    model.store.dispose();
  });
});
