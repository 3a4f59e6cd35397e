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
import type { WinogradMode } from '../../src/engine/engine.js';
import { setOnednnWinograd } from '../../src/engine/onednn/native.js';

await useCpuBackend();
const onednn = await loadOnednn();
if (!onednn.ok) console.warn(`training step on onednn skipped: ${onednn.reason} (${onednn.hint})`);

const SPECS: Array<[string, StepSpec]> = [
  ['width 8, 16 px: direct convs', { label: 'onednn-r18', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 }, batch: 6, side: 16 }],
  // engine.winograd: all. 16 and 32 channels on 32x32 and 16x16 outputs: Winograd in layers 1 and 2 where the CPU has it.
  ['width 16, 32 px, Winograd 3x3 convs on AVX-512', { label: 'onednn-r18-wino', model: { arch: 'resnet18', stem: 'cifar', width: 16 }, method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 }, batch: 4, side: 32 }],
];
const WINOGRAD: Record<string, WinogradMode> = { 'onednn-r18': 'inference', 'onednn-r18-wino': 'all' };

describe.skipIf(!onednn.ok)('a SimSiam training step on onednn', () => {
  it.each(SPECS)('%s: matches the cpu backend: loss, every gradient, every weight, running statistic and momentum after SGD', async (_name, spec) => {
    const cpu = await stepOn('cpu', spec);
    nativeRuns.clear();
    setOnednnWinograd(WINOGRAD[spec.label]!);
    const native = await stepOn('onednn', spec).finally(() => setOnednnWinograd('inference'));
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
