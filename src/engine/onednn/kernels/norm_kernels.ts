/**
 * Training-mode normalisation kernels of the onednn backend (native/onednn/batch_norm.cc,
 * native/onednn/group_norm.cc). Both have the same contract: forward (x, gamma, beta) -> (y, mean, variance),
 * backward (dy, x, gamma, mean, variance) -> (dx, dgamma, dbeta), statistics carrying no gradient.
 * They have no cpu counterpart: the ops in src/ops/ run them only where they are registered and
 * compose standard ops everywhere else.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import type { NativeAddon } from '../native.js';
import { nativeRuns, requireF32, sizeOf } from './common.js';

// Batch norm and group norm share one native signature (the params array differs).
type ForwardFn = NonNullable<NativeAddon['batchNormForward']>;
type BackwardFn = NonNullable<NativeAddon['batchNormBackward']>;

export interface NormKernelSpec {
  /** Forward kernel name; the backward one is `${name}Grad`. */
  name: string;
  /** Addon function names. */
  forward: keyof NativeAddon;
  backward: keyof NativeAddon;
  /** The native params array for an input shape and the op's attributes. */
  params(shape: readonly number[], attrs: Record<string, unknown>): Int32Array;
  /** Number of statistics (mean/variance entries) for those params. */
  statCount(params: Int32Array): number;
}

export const gradName = (spec: NormKernelSpec) => `${spec.name}Grad`;

function forwardKernel(spec: NormKernelSpec, fn: ForwardFn): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const channels = x.shape[x.shape.length - 1]!;
    const stats = spec.statCount(params);
    const xs = requireF32(cpu, x, spec.name, 'x', sizeOf(x.shape));
    const y = new Float32Array(xs.length);
    const mean = new Float32Array(stats);
    const variance = new Float32Array(stats);
    const eps = (attrs as { eps: number }).eps;
    fn(xs, requireF32(cpu, gamma, spec.name, 'gamma', channels), requireF32(cpu, beta, spec.name, 'beta', channels), y, mean, variance, params, eps);
    nativeRuns.set(spec.name, (nativeRuns.get(spec.name) ?? 0) + 1);
    return [cpu.makeTensorInfo([...x.shape], 'float32', y), cpu.makeTensorInfo([stats], 'float32', mean), cpu.makeTensorInfo([stats], 'float32', variance)];
  };
}

function backwardKernel(spec: NormKernelSpec, fn: BackwardFn): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { dy, x, gamma, mean, variance } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'variance', tf.TensorInfo>;
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const channels = x.shape[x.shape.length - 1]!;
    const stats = spec.statCount(params);
    const size = sizeOf(x.shape);
    const dx = new Float32Array(size);
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
    );
    nativeRuns.set(name, (nativeRuns.get(name) ?? 0) + 1);
    return [cpu.makeTensorInfo([...x.shape], 'float32', dx), cpu.makeTensorInfo([...gamma.shape], 'float32', dgamma), cpu.makeTensorInfo([...gamma.shape], 'float32', dbeta)];
  };
}

/**
 * Registers both kernels on `backendName` and the forward kernel's gradient (gradients are global in
 * tfjs, so once is enough). An addon built before these functions existed registers nothing, and the
 * op then takes its composed path.
 */
export function registerNormKernels(spec: NormKernelSpec, backendName: string, addon: NativeAddon): boolean {
  const forward = addon[spec.forward];
  const backward = addon[spec.backward];
  if (typeof forward !== 'function' || typeof backward !== 'function') return false;
  tf.registerKernel({ kernelName: spec.name, backendName, kernelFunc: forwardKernel(spec, forward.bind(addon) as ForwardFn) });
  tf.registerKernel({ kernelName: gradName(spec), backendName, kernelFunc: backwardKernel(spec, backward.bind(addon) as BackwardFn) });
  if (!tf.getGradient(spec.name)) {
    tf.registerGradient({
      kernelName: spec.name,
      inputsToSave: ['x', 'gamma'],
      outputsToSave: [false, true, true],
      gradFunc: (dys, saved, attrs) => {
        // The statistics outputs carry no gradient by contract; only dy of y matters.
        const dy = (dys as Array<tf.Tensor | null>)[0];
        const [x, gamma, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        if (!dy) return { x: () => tf.zerosLike(x), gamma: () => tf.zerosLike(gamma), beta: () => tf.zerosLike(gamma) };
        const [dx, dgamma, dbeta] = tf.engine().runKernel(gradName(spec), { dy, x, gamma, mean, variance }, attrs as tf.NamedAttrMap) as tf.Tensor[];
        return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
      },
    });
  }
  return true;
}
