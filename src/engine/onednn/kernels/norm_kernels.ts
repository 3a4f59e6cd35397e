/**
 * Training-mode normalisation kernels of the onednn backend (native/onednn/batch_norm.cc,
 * native/onednn/group_norm.cc), implementing the kernel pairs of src/engine/custom_kernels.ts.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import { gradName, registerNormGradient, type NormKernelSpec } from '../../custom_kernels.js';
import { countNative } from '../../kernel_stats.js';
import { sizeOf } from '../../../util/values.js';
import type { NativeAddon } from '../native.js';
import { requireF32, outputArray } from './common.js';

// Batch norm and group norm share one native signature (the params array differs).
type ForwardFn = NonNullable<NativeAddon['batchNormForward']>;
type BackwardFn = NonNullable<NativeAddon['batchNormBackward']>;

/** The addon functions implementing a kernel pair. */
export interface NormAddonFunctions {
  forward: keyof NativeAddon;
  backward: keyof NativeAddon;
}

function forwardKernel(spec: NormKernelSpec, fn: ForwardFn): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const channels = x.shape[x.shape.length - 1]!;
    const stats = spec.statCount(params);
    const xs = requireF32(cpu, x, spec.name, 'x', sizeOf(x.shape));
    const y = outputArray(xs.length);
    const mean = new Float32Array(stats);
    const variance = new Float32Array(stats);
    const eps = (attrs as { eps: number }).eps;
    fn(xs, requireF32(cpu, gamma, spec.name, 'gamma', channels), requireF32(cpu, beta, spec.name, 'beta', channels), y, mean, variance, params, eps, spec.relu === true);
    countNative(spec.name);
    return [cpu.makeTensorInfo([...x.shape], 'float32', y), cpu.makeTensorInfo([stats], 'float32', mean), cpu.makeTensorInfo([stats], 'float32', variance)];
  };
}

function backwardKernel(spec: NormKernelSpec, fn: BackwardFn): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { dy, x, gamma, mean, variance, y } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'variance' | 'y', tf.TensorInfo>;
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const channels = x.shape[x.shape.length - 1]!;
    const stats = spec.statCount(params);
    const size = sizeOf(x.shape);
    const dx = outputArray(size);
    const dgamma = new Float32Array(channels);
    const dbeta = new Float32Array(channels);
    const name = gradName(spec);
    fn(
      requireF32(cpu, dy, name, 'dy', size),
      requireF32(cpu, x, name, 'x', size),
      requireF32(cpu, gamma, name, 'gamma', channels),
      requireF32(cpu, mean, name, 'mean', stats),
      requireF32(cpu, variance, name, 'variance', stats),
      dx,
      dgamma,
      dbeta,
      params,
      (attrs as { eps: number }).eps,
      spec.relu ? requireF32(cpu, y, name, 'y', size) : null,
    );
    countNative(name);
    return [cpu.makeTensorInfo([...x.shape], 'float32', dx), cpu.makeTensorInfo([...gamma.shape], 'float32', dgamma), cpu.makeTensorInfo([...gamma.shape], 'float32', dbeta)];
  };
}

/**
 * Registers both kernels on `backendName` and the pair's gradient. An addon built before these
 * functions existed registers nothing, and the op then takes its composed path.
 */
export function registerNormKernels(spec: NormKernelSpec, fns: NormAddonFunctions, backendName: string, addon: NativeAddon): boolean {
  const forward = addon[fns.forward];
  const backward = addon[fns.backward];
  if (typeof forward !== 'function' || typeof backward !== 'function') return false;
  tf.registerKernel({ kernelName: spec.name, backendName, kernelFunc: forwardKernel(spec, forward.bind(addon) as ForwardFn) });
  tf.registerKernel({ kernelName: gradName(spec), backendName, kernelFunc: backwardKernel(spec, backward.bind(addon) as BackwardFn) });
  registerNormGradient(spec);
  return true;
}
