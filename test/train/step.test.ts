// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { relativeError, useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { buildSslModel, type SslModel } from '../../src/model/build.js';
import { LossScaler } from '../../src/optim/loss_scale.js';
import { Sgd } from '../../src/optim/sgd.js';
import { trainStep } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const cfg = ConfigSchema.parse({
  model: { arch: 'resnet18', stem: 'cifar', width: 4 },
  method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 },
});
const SIDE = 8;
const BATCH = 4;

function views(seed: string): Float32Array[] {
  const rng = new Rng('step-test', seed);
  return [0, 1].map(() => Float32Array.from({ length: BATCH * SIDE * SIDE * 3 }, () => rng.normal()));
}

function model(precision: 'fp32' | 'mixed16'): { m: SslModel; sgd: Sgd } {
  const m = buildSslModel(cfg.model, cfg.method, 4, { precision });
  return { m, sgd: new Sgd(m.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true }) };
}

const weights = (m: SslModel): Map<string, Float32Array> =>
  new Map(m.store.trainable().map((p) => [p.name, p.variable.dataSync().slice() as Float32Array]));

function dispose(...ms: Array<{ m: SslModel; sgd: Sgd }>): void {
  for (const { m, sgd } of ms) {
    sgd.dispose();
    m.store.dispose();
  }
}

describe('trainStep with a loss scaler (mixed16)', () => {
  it('skips the update and halves the scale when the scaled gradients overflow', () => {
    const a = model('mixed16');
    const before = weights(a.m);
    const scaler = new LossScaler({ initScale: 2 ** 100 });
    const out = trainStep(a.m.method, a.m.store, a.sgd, views('x'), SIDE, () => 0.1, { scaler });
    expect(out.skipped).toBe(true);
    expect(out.lossScale).toBe(2 ** 100);
    expect(scaler.scale).toBe(2 ** 99);
    // The reported loss is the unscaled one, finite: not divergence.
    expect(Number.isFinite(out.loss)).toBe(true);
    expect(Math.abs(out.loss)).toBeLessThanOrEqual(1);
    for (const [name, w] of weights(a.m)) expect(w, name).toEqual(before.get(name));
    expect(a.sgd.buffers.size).toBe(0);
    dispose(a);
  });

  it('applies the unscaled gradients: the update does not depend on the (power-of-two) scale', () => {
    // Scaling by 2^k moves every normal half value exactly, so two scales give the same update up to
    // the gradients that flush to zero at the smaller one. Gradients left scaled would differ 2^6-fold.
    const a = model('mixed16');
    const b = model('mixed16');
    const f = model('fp32');
    const high = new LossScaler({ initScale: 2 ** 12 });
    const low = new LossScaler({ initScale: 2 ** 6 });
    const xs = views('y');
    const before = weights(b.m);
    const outA = trainStep(a.m.method, a.m.store, a.sgd, xs, SIDE, () => 0.5, { scaler: high });
    const outB = trainStep(b.m.method, b.m.store, b.sgd, xs, SIDE, () => 0.5, { scaler: low });
    const outF = trainStep(f.m.method, f.m.store, f.sgd, xs, SIDE, () => 0.5);
    expect([outA.skipped, outB.skipped]).toEqual([false, false]);
    expect([outA.lossScale, outB.lossScale]).toEqual([2 ** 12, 2 ** 6]);
    expect(high.state()).toEqual({ scale: 2 ** 12, goodSteps: 1 });
    // Same forward (the scale only enters the backward), and close to fp32's.
    expect(outA.loss).toBe(outB.loss);
    expect(Math.abs(outA.loss - outF.loss)).toBeLessThan(1e-2);
    const wa = weights(a.m);
    let compared = 0;
    for (const [name, wb] of weights(b.m)) {
      const w0 = before.get(name)!;
      const db = wb.map((v, i) => v - w0[i]!);
      if (Math.hypot(...db) < 1e-6) continue;
      const da = wa.get(name)!.map((v, i) => v - w0[i]!);
      expect(relativeError(da, db), name).toBeLessThan(1e-2);
      compared++;
    }
    expect(compared).toBeGreaterThan(10);
    dispose(a, b, f);
  });

  it('a non-finite loss skips the step without touching the scale (that is divergence, for the trainer)', () => {
    const a = model('mixed16');
    const before = weights(a.m);
    const scaler = new LossScaler({ initScale: 2 ** 8 });
    const xs = views('z');
    xs[0]!.fill(Number.NaN, 0, 10);
    const out = trainStep(a.m.method, a.m.store, a.sgd, xs, SIDE, () => 0.1, { scaler });
    expect(Number.isNaN(out.loss)).toBe(true);
    expect(out.skipped).toBe(true);
    expect(scaler.state()).toEqual({ scale: 2 ** 8, goodSteps: 0 });
    for (const [name, w] of weights(a.m)) expect(w, name).toEqual(before.get(name));
    dispose(a);
  });

  it('keeps the tensor count flat, skipped or not', () => {
    const a = model('mixed16');
    const scaler = new LossScaler({ initScale: 2 ** 127 });
    const xs = views('w');
    trainStep(a.m.method, a.m.store, a.sgd, xs, SIDE, () => 0.1, { scaler: new LossScaler({ initScale: 1 }) }); // creates the momentum
    const start = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) {
      expect(trainStep(a.m.method, a.m.store, a.sgd, xs, SIDE, () => 0.1, { scaler }).skipped).toBe(true);
      expect(tf.memory().numTensors).toBe(start);
    }
    expect(trainStep(a.m.method, a.m.store, a.sgd, xs, SIDE, () => 0.1, { scaler: new LossScaler({ initScale: 1 }) }).skipped).toBe(false);
    expect(tf.memory().numTensors).toBe(start);
    dispose(a);
  });
});

describe('trainStep with labels', () => {
  it('refuses a method that needs labels when none (or the wrong number) are given', () => {
    const c = ConfigSchema.parse({ model: cfg.model, method: { name: 'supervised' } });
    const m = buildSslModel(c.model, c.method, 1, { numClasses: 3 });
    const sgd = new Sgd(m.store.trainable(), { momentum: 0.9, weightDecay: 0, decayNormAndBias: true });
    const [x] = views('l');
    expect(() => trainStep(m.method, m.store, sgd, [x!], SIDE, () => 0.1)).toThrow(/supervised needs 4 labels, got none/);
    expect(() => trainStep(m.method, m.store, sgd, [x!], SIDE, () => 0.1, { labels: new Int32Array(3) })).toThrow(/needs 4 labels, got 3/);
    const out = trainStep(m.method, m.store, sgd, [x!], SIDE, () => 0.1, { labels: Int32Array.from([0, 1, 2, 0]) });
    expect(out.loss).toBeCloseTo(Math.log(3), 5);
    expect(out.accuracy).toBeGreaterThanOrEqual(0);
    sgd.dispose();
    m.store.dispose();
  });
});
