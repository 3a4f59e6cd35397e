// helpers first: it loads tfjs-core (CommonJS) before src/engine/tf.ts pulls in the ESM gradient files.
import { useCpuBackend } from '../helpers.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { ParamStore } from '../../src/model/params.js';
import { Sgd, type SgdOptions } from '../../src/optim/sgd.js';
import { Rng } from '../../src/util/rng.js';

beforeAll(useCpuBackend);

const W0 = [0.5, -1.25, 2];
const B0 = [0.1, -0.3];
const P0 = [1.5, 0.75];
const GRADS = [
  { w: [0.2, -0.4, 1.0], b: [0.05, 0.5], p: [-1, 0.25] },
  { w: [-0.6, 0.1, 0.3], b: [-0.2, 0.4], p: [0.5, 2] },
  { w: [0.3, 0.3, -0.9], b: [0.7, -0.1], p: [0.1, -0.4] },
];

/** w: a weight (default group); b: a bias (normOrBias); p: a predictor weight (group 'predictor'). */
function makeStore(): ParamStore {
  const store = new ParamStore();
  store.add('w', tf.tensor1d(W0), { layout: 'vector' });
  store.add('b', tf.tensor1d(B0), { layout: 'vector', normOrBias: true });
  store.add('p', tf.tensor1d(P0), { layout: 'vector', group: 'predictor' });
  store.add('stat', tf.tensor1d([7, 7]), { layout: 'vector', trainable: false });
  return store;
}

function gradMap(store: ParamStore, g: Record<string, number[]>): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const [name, v] of Object.entries(g)) out[store.get(name).variable.name] = tf.tensor1d(v);
  return out;
}

function step(sgd: Sgd, store: ParamStore, g: Record<string, number[]>, lr: (group: string) => number): void {
  const grads = gradMap(store, g);
  sgd.step(grads, lr);
  tf.dispose(Object.values(grads));
}

const values = (store: ParamStore, name: string): number[] => Array.from(store.get(name).variable.dataSync());

/** PyTorch torch.optim.SGD (dampening 0, no nesterov), float64. */
function reference(w0: number[], grads: number[][], lrs: number[], momentum: number, wd: number): { w: number[]; buf: number[] } {
  const w = [...w0];
  let buf: number[] | null = null;
  grads.forEach((g, t) => {
    const d = g.map((gi, i) => gi + wd * w[i]!);
    buf = buf === null ? d : buf.map((b, i) => momentum * b + d[i]!);
    for (let i = 0; i < w.length; i++) w[i]! -= lrs[t]! * buf[i]!;
  });
  return { w, buf: buf! };
}

const OPTS: SgdOptions = { momentum: 0.9, weightDecay: 0.1, decayNormAndBias: true };

describe('Sgd', () => {
  it('two steps match PyTorch semantics (buf = g + wd*w first, then momentum*buf + d; w -= lr*buf)', () => {
    const store = makeStore();
    const sgd = new Sgd(store.trainable(), OPTS);
    const lrs = [0.5, 0.25];
    step(sgd, store, GRADS[0]!, () => lrs[0]!);
    // Hand-computed first step for w[0]: d = 0.2 + 0.1*0.5 = 0.25; buf = 0.25; w = 0.5 - 0.5*0.25 = 0.375.
    expect(values(store, 'w')[0]).toBeCloseTo(0.375, 6);
    expect(Array.from(sgd.buffers.get('w')!.dataSync())[0]).toBeCloseTo(0.25, 6);
    step(sgd, store, GRADS[1]!, () => lrs[1]!);
    // Second step for w[0]: d = -0.6 + 0.1*0.375 = -0.5625; buf = 0.9*0.25 - 0.5625 = -0.3375;
    // w = 0.375 + 0.25*0.3375 = 0.459375.
    expect(values(store, 'w')[0]).toBeCloseTo(0.459375, 6);
    for (const name of ['w', 'b', 'p'] as const) {
      const init = { w: W0, b: B0, p: P0 }[name];
      const ref = reference(init, [GRADS[0]![name], GRADS[1]![name]], lrs, 0.9, 0.1);
      values(store, name).forEach((v, i) => expect(v, `${name}[${i}]`).toBeCloseTo(ref.w[i]!, 6));
      Array.from(sgd.buffers.get(name)!.dataSync()).forEach((v, i) => expect(v, `buf ${name}[${i}]`).toBeCloseTo(ref.buf[i]!, 6));
    }
    // Non-trainable parameters are neither updated nor given buffers.
    expect(values(store, 'stat')).toEqual([7, 7]);
    expect(sgd.buffers.has('stat')).toBe(false);
    sgd.dispose();
    store.dispose();
  });

  it('skips weight decay for norm/bias parameters when decayNormAndBias is false', () => {
    const store = makeStore();
    const sgd = new Sgd(store.trainable(), { ...OPTS, decayNormAndBias: false });
    step(sgd, store, GRADS[0]!, () => 0.5);
    step(sgd, store, GRADS[1]!, () => 0.5);
    const refB = reference(B0, [GRADS[0]!.b, GRADS[1]!.b], [0.5, 0.5], 0.9, 0);
    const refW = reference(W0, [GRADS[0]!.w, GRADS[1]!.w], [0.5, 0.5], 0.9, 0.1);
    values(store, 'b').forEach((v, i) => expect(v).toBeCloseTo(refB.w[i]!, 6));
    values(store, 'w').forEach((v, i) => expect(v).toBeCloseTo(refW.w[i]!, 6));
    // The decayed reference really differs, so the check can tell.
    const decayedB = reference(B0, [GRADS[0]!.b, GRADS[1]!.b], [0.5, 0.5], 0.9, 0.1);
    expect(Math.abs(decayedB.w[0]! - refB.w[0]!)).toBeGreaterThan(1e-3);
    sgd.dispose();
    store.dispose();
  });

  it('gives each group its own lr (the predictor group)', () => {
    const store = makeStore();
    const sgd = new Sgd(store.trainable(), OPTS);
    const seen = new Set<string>();
    const lr = (group: string): number => {
      seen.add(group);
      return group === 'predictor' ? 0.05 : 0.4;
    };
    step(sgd, store, GRADS[0]!, lr);
    step(sgd, store, GRADS[1]!, lr);
    expect([...seen].sort()).toEqual(['default', 'predictor']);
    const refP = reference(P0, [GRADS[0]!.p, GRADS[1]!.p], [0.05, 0.05], 0.9, 0.1);
    const refW = reference(W0, [GRADS[0]!.w, GRADS[1]!.w], [0.4, 0.4], 0.9, 0.1);
    values(store, 'p').forEach((v, i) => expect(v).toBeCloseTo(refP.w[i]!, 6));
    values(store, 'w').forEach((v, i) => expect(v).toBeCloseTo(refW.w[i]!, 6));
    sgd.dispose();
    store.dispose();
  });

  it('leaves parameters without a gradient untouched', () => {
    const store = makeStore();
    const sgd = new Sgd(store.trainable(), OPTS);
    step(sgd, store, { w: GRADS[0]!.w }, () => 0.5);
    expect(values(store, 'b')).toEqual(Array.from(Float32Array.from(B0)));
    expect(sgd.buffers.has('b')).toBe(false);
    sgd.dispose();
    store.dispose();
  });

  it('loadBuffers restores momentum: stopping and resuming equals not stopping', () => {
    const lr = (g: string): number => (g === 'predictor' ? 0.1 : 0.3);
    // Uninterrupted: three steps.
    const a = makeStore();
    const sgdA = new Sgd(a.trainable(), OPTS);
    for (const g of GRADS) step(sgdA, a, g, lr);

    // Interrupted after one step: save weights and buffers, rebuild, restore, continue.
    const b = makeStore();
    const sgdB = new Sgd(b.trainable(), OPTS);
    step(sgdB, b, GRADS[0]!, lr);
    const savedW = new Map(b.trainable().map((p) => [p.name, Array.from(p.variable.dataSync())]));
    const savedBuf = new Map([...sgdB.buffers].map(([k, v]) => [k, Array.from(v.dataSync())]));
    sgdB.dispose();
    b.dispose();

    const resume = (load: boolean): ParamStore => {
      const c = makeStore();
      for (const p of c.trainable()) p.variable.assign(tf.tensor1d(savedW.get(p.name)!));
      const sgdC = new Sgd(c.trainable(), OPTS);
      if (load) {
        const bufs = new Map([...savedBuf].map(([k, v]) => [k, tf.tensor1d(v) as tf.Tensor]));
        sgdC.loadBuffers(bufs);
        tf.dispose([...bufs.values()]); // the optimiser must own its copy
      }
      step(sgdC, c, GRADS[1]!, lr);
      step(sgdC, c, GRADS[2]!, lr);
      sgdC.dispose();
      return c;
    };
    const c = resume(true);
    for (const name of ['w', 'b', 'p']) {
      const got = values(c, name);
      values(a, name).forEach((v, i) => expect(got[i], `${name}[${i}]`).toBeCloseTo(v, 6));
    }
    // Without the buffers, the first resumed step restarts momentum and the result differs.
    const d = resume(false);
    expect(Math.abs(values(d, 'w')[0]! - values(a, 'w')[0]!)).toBeGreaterThan(1e-3);
    sgdA.dispose();
    [a, c, d].forEach((s) => s.dispose());
  });

  it('loadBuffers replaces existing buffers without leaking', () => {
    const store = makeStore();
    const sgd = new Sgd(store.trainable(), OPTS);
    step(sgd, store, GRADS[0]!, () => 0.1);
    const before = tf.memory().numTensors;
    const bufs = new Map(store.trainable().map((p) => [p.name, tf.ones(p.variable.shape) as tf.Tensor]));
    sgd.loadBuffers(bufs);
    tf.dispose([...bufs.values()]);
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(sgd.buffers.get('w')!.dataSync())).toEqual([1, 1, 1]);
    sgd.dispose();
    store.dispose();
  });

  it('does not leak tensors across steps', () => {
    const rng = new Rng(9, 'sgd-leak');
    const store = new ParamStore();
    for (let i = 0; i < 4; i++) {
      store.add(`l${i}.weight`, tf.randomNormal([3, 4], 0, 1, 'float32', i), { layout: 'linear', group: i === 3 ? 'predictor' : undefined });
      store.add(`l${i}.bias`, tf.zeros([4]), { layout: 'vector', normOrBias: true });
    }
    const sgd = new Sgd(store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: false });
    const oneStep = (): void => {
      const grads: tf.NamedTensorMap = {};
      for (const p of store.trainable()) {
        grads[p.variable.name] = tf.tensor(Float32Array.from({ length: p.variable.size }, () => rng.normal()), p.variable.shape);
      }
      sgd.step(grads, (g) => (g === 'predictor' ? 0.05 : 0.1));
      tf.dispose(Object.values(grads));
    };
    oneStep();
    const after1 = tf.memory().numTensors;
    for (let s = 0; s < 5; s++) oneStep();
    expect(tf.memory().numTensors).toBe(after1);
    expect(sgd.buffers.size).toBe(8);
    // The buffers are the only new tensors: dispose returns the count to the store's own.
    sgd.dispose();
    expect(tf.memory().numTensors).toBe(after1 - 8);
    store.dispose();
  });
});
