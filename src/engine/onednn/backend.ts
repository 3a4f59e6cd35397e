/**
 * Registers the tfjs backend 'onednn': the cpu backend's storage and every one of its kernels, with
 * the hot ones replaced by native oneDNN versions that fall back to the cpu kernel for cases they do
 * not cover. Tensors therefore stay plain Float32Arrays and moving between 'cpu' and 'onednn' is free.
 */
import '@tensorflow/tfjs-backend-cpu';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../tf.js';
import type { NativeAddon } from './native.js';
import { withFallback, type NativeKernel } from './kernels/common.js';
import { countFallback } from '../kernel_stats.js';
import { conv2D, conv2DBackpropFilter, conv2DBackpropInput, fusedConv2D } from './kernels/conv.js';
import { batchMatMul, fusedMatMul } from './kernels/matmul.js';
import { maxPool, maxPoolGrad } from './kernels/pool.js';
import { padV2, slice } from './kernels/pad_slice.js';
import { registerBatchNormKernels } from './kernels/batch_norm.js';
import { registerGroupNormKernels } from './kernels/group_norm.js';
import { registerSgdKernel } from './kernels/sgd.js';
import { registerRoundToHalfKernel } from './kernels/fp16_round.js';
import { add, mean, multiply, registerReluGradKernel, relu, step, sum } from './kernels/eltwise.js';

export const BACKEND_NAME = 'onednn';

export const NATIVE_KERNELS: Readonly<Record<string, NativeKernel>> = {
  [tf.Conv2D]: conv2D,
  [tf.FusedConv2D]: fusedConv2D,
  [tf.Conv2DBackpropInput]: conv2DBackpropInput,
  [tf.Conv2DBackpropFilter]: conv2DBackpropFilter,
  [tf.BatchMatMul]: batchMatMul,
  [tf._FusedMatMul]: fusedMatMul,
  [tf.MaxPool]: maxPool,
  [tf.MaxPoolGrad]: maxPoolGrad,
  [tf.PadV2]: padV2,
  [tf.Slice]: slice,
  [tf.Relu]: relu,
  [tf.Step]: step,
  [tf.Add]: add,
  [tf.Multiply]: multiply,
  [tf.Sum]: sum,
  [tf.Mean]: mean,
};

/** A cpu kernel kept as is, counted as a fallback so profiles can name every JavaScript kernel. */
function countedJs(kernelName: string, kernel: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    countFallback(kernelName);
    return kernel(args);
  };
}

/** Idempotent: a second call (another loader, a test) finds the backend and leaves it alone. */
export function registerOnednnBackend(addon: NativeAddon): void {
  if (tf.findBackendFactory(BACKEND_NAME)) return;
  const cpuKernels = tf.getKernelsForBackend('cpu');
  if (cpuKernels.length === 0) throw new Error('tfjs-backend-cpu registered no kernels');
  for (const config of cpuKernels) {
    const native = NATIVE_KERNELS[config.kernelName];
    tf.registerKernel({
      ...config,
      backendName: BACKEND_NAME,
      kernelFunc: native ? withFallback(config.kernelName, native, addon) : countedJs(config.kernelName, config.kernelFunc),
    });
  }
  // Kernels with no cpu counterpart, run only by ops that look for them (src/ops/batch_norm.ts, src/ops/group_norm.ts,
  // src/optim/sgd.ts, src/ops/fp16_round.ts, src/ops/relu_grad.ts).
  registerBatchNormKernels(BACKEND_NAME, addon);
  registerGroupNormKernels(BACKEND_NAME, addon);
  registerSgdKernel(BACKEND_NAME, addon);
  registerRoundToHalfKernel(BACKEND_NAME, addon);
  registerReluGradKernel(BACKEND_NAME, addon);
  // Priority 0 (cpu has 1): a program that never picks a backend keeps getting the cpu backend.
  tf.registerBackend(BACKEND_NAME, () => new MathBackendCPU(), 0);
}
