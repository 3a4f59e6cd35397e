/** loadOnednn's contract: registers a complete 'onednn' backend once, or says why it cannot. */
import { afterEach, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { loadOnednn } from '../../src/engine/onednn/loader.js';
import { BATCH_NORM_RELU_TRAIN, BATCH_NORM_RELU_TRAIN_GRAD, BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, GROUP_NORM, GROUP_NORM_GRAD, SGD_UPDATE } from '../../src/engine/custom_kernels.js';
import { ROUND_TO_HALF } from '../../src/ops/fp16_round.js';
import { RELU_GRAD } from '../../src/ops/relu_grad.js';
import { loadNative } from '../../src/engine/onednn/native.js';
import { useCpuBackend } from '../helpers.js';

const waitPolicyBefore = process.env.OMP_WAIT_POLICY;
const first = await loadOnednn();
if (!first.ok) console.warn(`onednn loader tests skipped: ${first.reason} (${first.hint})`);

describe('loadOnednn', () => {
  const saved = process.env.SIMTRIP_ONEDNN_DISABLE;
  afterEach(() => {
    if (saved === undefined) delete process.env.SIMTRIP_ONEDNN_DISABLE;
    else process.env.SIMTRIP_ONEDNN_DISABLE = saved;
  });

  it('reports unavailable, with a reason and a hint, when SIMTRIP_ONEDNN_DISABLE=1', async () => {
    process.env.SIMTRIP_ONEDNN_DISABLE = '1';
    const r = await loadOnednn();
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/SIMTRIP_ONEDNN_DISABLE/);
      expect(r.hint.length).toBeGreaterThan(0);
    }
  });

  it('an unavailable result always carries a reason and a hint', () => {
    if (!first.ok) {
      expect(first.reason).toMatch(/not built|failed to load|registering/);
      expect(first.hint).toMatch(/libdnnl/);
    }
  });
});

describe.skipIf(!first.ok)('the onednn backend', () => {
  it('describes the runtime and is idempotent', async () => {
    if (!first.ok) return;
    expect(first.detail).toMatch(/^oneDNN \d+\.\d+\.\d+, \d+ threads?$/);
    const again = await loadOnednn();
    expect(again).toEqual(first);
    expect(await tf.setBackend('onednn')).toBe(true);
    expect(tf.getBackend()).toBe('onednn');
  });

  it('has every cpu kernel, so no op is missing on it, plus only the native-only normalisation, ReLU-gradient and sgd kernels', () => {
    const cpu = new Set(tf.getKernelsForBackend('cpu').map((k) => k.kernelName));
    const onednn = new Set(tf.getKernelsForBackend('onednn').map((k) => k.kernelName));
    const extra = [...onednn].filter((k) => !cpu.has(k)).sort();
    expect([...cpu].filter((k) => !onednn.has(k))).toEqual([]);
    // An addon built before native/onednn/sgd.cc existed has no SGD kernel (src/optim/sgd.ts then composes ops).
    const native = loadNative();
    const sgd = native.ok && typeof native.addon.sgdUpdate === 'function' ? [SGD_UPDATE] : [];
    const gn = native.ok && typeof native.addon.groupNormForward === 'function' ? [GROUP_NORM, GROUP_NORM_GRAD] : [];
    // Kernels the cpu backend has too (e.g. the fp16 rounding op's JavaScript kernel) are not extra.
    const fused = native.ok && native.addon.info().batchNormRelu === true ? [BATCH_NORM_RELU_TRAIN, BATCH_NORM_RELU_TRAIN_GRAD] : [];
    expect(extra.filter((k) => k !== ROUND_TO_HALF)).toEqual([BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, ...fused, RELU_GRAD, ...gn, ...sgd].sort());
  });

  it('parks idle OpenMP workers unless the user chose a wait policy', () => {
    // Spin-waiting workers starve each other on a busy machine (see native.ts).
    expect(process.env.OMP_WAIT_POLICY).toBe(waitPolicyBefore ?? 'PASSIVE');
  });

  it('does not become the default backend, and tensors move freely between cpu and onednn', async () => {
    expect(tf.engine().registryFactory['onednn']?.priority).toBeLessThan(tf.engine().registryFactory['cpu']!.priority);
    await useCpuBackend();
    const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    await tf.setBackend('onednn');
    const b = tf.matMul(a, a);
    expect(Array.from(b.dataSync())).toEqual([7, 10, 15, 22]);
    await useCpuBackend();
    expect(Array.from(tf.add(b, 1).dataSync())).toEqual([8, 11, 16, 23]);
    tf.dispose([a, b]);
  });
});
