/**
 * trainingGrads against tf.variableGrads: the same gradients bit for bit through a SimSiam step
 * (stop-gradients, custom gradients, batch norm kernels, shared weights), no tensor left behind, and a
 * lower peak of device memory on the CUDA engine's host build (which counts every byte).
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { tf } from '../../src/engine/tf.js';
import { buildSslModel } from '../../src/model/build.js';
import { trainingGrads } from '../../src/train/gradients.js';
import { Rng } from '../../src/util/rng.js';
import { useCpuBackend } from '../helpers.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from '../engine/cuda/helpers.js';

await useCpuBackend();
const cuda = await loadCudaHost();

const cfg = ConfigSchema.parse({ model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 } });

function setup(precision: 'fp32' | 'mixed16' = 'fp32') {
  const model = buildSslModel(cfg.model, cfg.method, 5, { precision });
  const rng = new Rng('grads');
  const views = [0, 1].map(() => Float32Array.from({ length: 4 * 16 * 16 * 3 }, () => rng.normal()));
  const vars = model.store.trainable().map((p) => p.variable);
  const loss = () => model.method.step(views.map((v) => tf.tensor4d(v, [4, 16, 16, 3]))).loss;
  return { model, vars, loss };
}

async function valuesOf(grads: tf.NamedTensorMap): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, g] of Object.entries(grads)) out.set(k, (await g!.data()) as Float32Array);
  return out;
}

describe('trainingGrads', () => {
  it('gives the same loss and gradients as tf.variableGrads, bit for bit, and leaves no tensor behind', async () => {
    await tf.setBackend('cpu');
    const { model, vars, loss } = setup();
    const ref = tf.variableGrads(loss, vars);
    const refValues = await valuesOf(ref.grads);
    const refLoss = (await ref.value.data())[0];
    tf.dispose([ref.value, ...Object.values(ref.grads)]);
    const before = tf.memory().numTensors;
    const got = trainingGrads(loss, vars);
    expect((await got.value.data())[0]).toBe(refLoss);
    const gotValues = await valuesOf(got.grads);
    expect([...gotValues.keys()].sort()).toEqual([...refValues.keys()].sort());
    for (const [k, v] of refValues) expect(gotValues.get(k), k).toEqual(v);
    tf.dispose([got.value, ...Object.values(got.grads)]);
    expect(tf.memory().numTensors).toBe(before);
    model.store.dispose();
  });

  it.skipIf(!cuda.ok)('peaks lower in device memory than tf.variableGrads, in fp32 and in mixed16', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon = hostAddon();
    const peaks: Record<string, number> = {};
    for (const precision of ['fp32', 'mixed16'] as const) {
      const { model, vars, loss } = setup(precision);
      for (const [name, grad] of [['tfjs', tf.variableGrads], ['ours', trainingGrads]] as const) {
        const base = addon.memory().inUse;
        addon.resetPeak();
        const r = grad(loss, vars);
        peaks[`${name} ${precision}`] = addon.memory().peak - base;
        tf.dispose([r.value, ...Object.values(r.grads)]);
      }
      model.store.dispose();
    }
    console.log(`step memory above the weights: ${Object.entries(peaks).map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(2)} MiB`).join(', ')}`);
    expect(peaks['ours fp32']!).toBeLessThan(0.8 * peaks['tfjs fp32']!);
    expect(peaks['ours mixed16']!).toBeLessThan(peaks['ours fp32']!);
  });
});
