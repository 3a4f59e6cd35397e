/**
 * A whole SimSiam training step on onednn against the same step on the pure-JS cpu backend: the loss,
 * the gradient of every parameter and the weights after one SGD update, on a small ResNet-18. This is
 * what the per-kernel tests cannot show: that the native kernels compose into the same training.
 */
import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config/schema.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { tf } from '../../src/engine/tf.js';
import { buildSslModel } from '../../src/model/build.js';
import { Sgd } from '../../src/optim/sgd.js';
import { Rng } from '../../src/util/rng.js';
import { relativeError, useCpuBackend } from '../helpers.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`training step on onednn skipped: ${onednn.reason} (${onednn.hint})`);

const cfg = ConfigSchema.parse({
  model: { arch: 'resnet18', stem: 'cifar', width: 8 },
  method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 },
});
const BATCH = 6;
const SIDE = 16;

function views(): Float32Array[] {
  const rng = new Rng('step-parity');
  return [0, 1].map(() => Float32Array.from({ length: BATCH * SIDE * SIDE * 3 }, () => rng.normal()));
}

interface StepRecord {
  loss: number;
  grads: Map<string, Float32Array>;
  after: Map<string, Float32Array>;
}

/** One step on `backend` from the seeded initialisation: loss, every gradient, every weight after SGD. */
async function stepOn(backend: string): Promise<StepRecord> {
  await tf.setBackend(backend);
  const model = buildSslModel(cfg.model, cfg.method, 7);
  const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true });
  const params = model.store.trainable();
  const xs = views();
  const { value, grads } = tf.variableGrads(
    () => model.method.step(xs.map((v) => tf.tensor4d(v, [BATCH, SIDE, SIDE, 3]))).loss,
    params.map((p) => p.variable),
  );
  const record: StepRecord = { loss: (await value.data())[0]!, grads: new Map(), after: new Map() };
  for (const p of params) record.grads.set(p.name, (await grads[p.variable.name]!.data()) as Float32Array);
  opt.step(grads, () => 0.05);
  // Running statistics are part of the step too: the native BatchNorm must update them identically.
  for (const p of model.store.list()) record.after.set(p.name, (await p.variable.data()) as Float32Array);
  tf.dispose([value, ...Object.values(grads)]);
  opt.dispose();
  model.store.dispose();
  return record;
}

describe.skipIf(!onednn.ok)('a SimSiam training step on onednn', () => {
  it('matches the cpu backend: loss, every gradient, every weight and running statistic after SGD', async () => {
    const cpu = await stepOn('cpu');
    nativeRuns.clear();
    const native = await stepOn('onednn');
    for (const kernel of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul']) {
      expect(nativeRuns.get(kernel) ?? 0, `${kernel} ran natively`).toBeGreaterThan(0);
    }
    expect(Math.abs(native.loss - cpu.loss)).toBeLessThan(1e-5);
    expect([...native.grads.keys()]).toEqual([...cpu.grads.keys()]);
    let worst = 0;
    for (const [name, g] of cpu.grads) {
      // Zero-init residual BNs get exactly zero gradient in places; compare them absolutely.
      const err = relativeError(native.grads.get(name)!, g);
      const scale = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
      if (scale > 1e-6) worst = Math.max(worst, err);
      expect(scale > 1e-6 ? err : 0, name).toBeLessThan(1e-4);
    }
    for (const [name, w] of cpu.after) {
      // The predictor's input has zero batch mean (it leaves a BN), so its BN's running mean is pure
      // rounding noise around 0: there the absolute difference is what can be compared.
      const other = native.after.get(name)!;
      const maxDiff = w.reduce((m, v, i) => Math.max(m, Math.abs(v - other[i]!)), 0);
      expect(relativeError(other, w) < 1e-5 || maxDiff < 1e-6, `${name}: max difference ${maxDiff}`).toBe(true);
    }
    console.log(`training step onednn vs cpu: loss ${native.loss} vs ${cpu.loss}, worst gradient relative error ${worst.toExponential(2)}`);
  });
});
