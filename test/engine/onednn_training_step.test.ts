/**
 * A whole SimSiam training step on onednn against the same step on the pure-JS cpu backend: the loss,
 * the gradient of every parameter and the weights after one SGD update, on a small ResNet-18. This is
 * what the per-kernel tests cannot show: that the native kernels compose into the same training.
 */
import { describe, expect, it } from 'vitest';
import { compareSteps, stepOn, type StepSpec } from '../../src/check/step_parity.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { nativeRuns } from '../../src/engine/kernel_stats.js';
import { useCpuBackend } from '../helpers.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`training step on onednn skipped: ${onednn.reason} (${onednn.hint})`);

const SPEC: StepSpec = {
  label: 'onednn-r18',
  model: { arch: 'resnet18', stem: 'cifar', width: 8 },
  method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 },
  batch: 6,
  side: 16,
};

describe.skipIf(!onednn.ok)('a SimSiam training step on onednn', () => {
  it('matches the cpu backend: loss, every gradient, every weight, running statistic and momentum after SGD', async () => {
    const cpu = await stepOn('cpu', SPEC);
    nativeRuns.clear();
    const native = await stepOn('onednn', SPEC);
    for (const kernel of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul']) {
      expect(nativeRuns.get(kernel) ?? 0, `${kernel} ran natively`).toBeGreaterThan(0);
    }
    const c = compareSteps(native, cpu);
    expect(c.missing).toEqual([]);
    expect(c.lossDifference).toBeLessThan(1e-5);
    expect(c.worstGradient.error, c.worstGradient.name).toBeLessThan(1e-4);
    expect(c.worstState.error, c.worstState.name).toBeLessThan(1e-5);
    console.log(`training step onednn vs cpu: loss ${native.loss} vs ${cpu.loss}, worst gradient relative error ${c.worstGradient.error.toExponential(2)}`);
  });
});
