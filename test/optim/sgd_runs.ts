/** A few SGD updates of a set of parameters on the active backend, for the engines' SGD tests. */
import { tf } from '../../src/engine/tf.js';
import { ParamStore, type Layout } from '../../src/model/params.js';
import { Sgd, type SgdOptions } from '../../src/optim/sgd.js';
import { Rng } from '../../src/util/rng.js';

export interface ParamSpec {
  name: string;
  shape: number[];
  layout: Layout;
  normOrBias?: boolean;
  group?: string;
}

export const STEPS = 3;
const lrOf = (step: number) => (group: string) => (group === 'predictor' ? 0.05 : 0.1 * (1 - step / 10));

function randomValues(n: number, seed: string, scale: number): Float32Array {
  const rng = new Rng('sgd-test', seed);
  return Float32Array.from({ length: n }, () => scale * rng.normal());
}

export type SgdResult = Map<string, { w: Float32Array; buf: Float32Array }>;

/** STEPS updates on the active backend; every weight and momentum buffer afterwards, and the tensor count after each step. */
export function trainSgd(specs: readonly ParamSpec[], opts: SgdOptions, tag: string): { result: SgdResult; tensorCounts: number[] } {
  const store = new ParamStore();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    store.add(s.name, tf.tensor(randomValues(n, `${s.name}/w`, 0.5), s.shape), { layout: s.layout, normOrBias: s.normOrBias, group: s.group });
  }
  const sgd = new Sgd(store.trainable(), opts);
  const tensorCounts: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const grads: tf.NamedTensorMap = {};
    for (const p of store.trainable()) grads[p.variable.name] = tf.tensor(randomValues(p.variable.size, `${p.name}/g${step}/${tag}`, 1), p.variable.shape);
    sgd.step(grads, lrOf(step));
    tf.dispose(Object.values(grads));
    tensorCounts.push(tf.memory().numTensors);
  }
  const result: SgdResult = new Map();
  for (const p of store.trainable()) {
    result.set(p.name, { w: p.variable.dataSync() as Float32Array, buf: sgd.buffers.get(p.name)!.dataSync() as Float32Array });
  }
  sgd.dispose();
  store.dispose();
  return { result, tensorCounts };
}
