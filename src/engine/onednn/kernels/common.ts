/** What every native kernel needs: typed access to cpu-backend storage and the cpu fallback. */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import type { NativeAddon } from '../native.js';
import { countFallback, countNative } from '../../kernel_stats.js';
import { checkedFloat32Input } from '../../custom_kernels.js';

export type KernelArgs = Parameters<tf.KernelFunc>[0];

/** A native kernel: returns null when it cannot handle the case, so the cpu kernel runs instead. */
export type NativeKernel = (args: KernelArgs, backend: MathBackendCPU, addon: NativeAddon) => tf.TensorInfo | null;

/** The float32 storage of a tensor, or null when it is not plain float32 (the cpu kernel then runs). */
export function f32(backend: MathBackendCPU, t: tf.TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== 'float32') return null;
  const values = backend.data.get(t.dataId)?.values;
  return values instanceof Float32Array ? values : null;
}

/** The float32 storage of a custom kernel's input, which must be present, float32 and `length` long. */
export function requireF32(
  backend: MathBackendCPU,
  t: tf.TensorInfo | undefined,
  kernel: string,
  name: string,
  length: number,
): Float32Array {
  const values = f32(backend, checkedFloat32Input(t, kernel, name, length));
  if (!values) throw new Error(`${kernel}: ${name} holds no Float32Array on the cpu backend`);
  return values;
}

/**
 * A per-channel bias as oneDNN wants it (one value per output channel), or null when tfjs' broadcasting
 * add would do something else: change the output rank or broadcast along a non-channel axis.
 */
export function channelBias(
  backend: MathBackendCPU,
  bias: tf.TensorInfo,
  channels: number,
  outRank: number,
): Float32Array | null {
  const values = f32(backend, bias);
  if (!values || bias.shape.length > outRank) return null;
  const last = bias.shape.length === 0 ? 1 : bias.shape[bias.shape.length - 1]!;
  if (bias.shape.slice(0, -1).some((d) => d !== 1)) return null;
  if (last === channels) return values;
  if (last === 1) return new Float32Array(channels).fill(values[0]!);
  return null;
}

/** Wraps a native kernel into a tfjs kernel function that falls back to the cpu kernel of the same name. */
export function withFallback(kernelName: string, native: NativeKernel, addon: NativeAddon): tf.KernelFunc {
  const cpu = tf.getKernel(kernelName, 'cpu');
  if (!cpu) throw new Error(`tfjs-backend-cpu has no ${kernelName} kernel to fall back to`);
  const fallback = cpu.kernelFunc;
  return (args) => {
    const backend = args.backend as MathBackendCPU;
    const out = native(args, backend, addon);
    if (out === null) {
      countFallback(kernelName);
      return fallback(args);
    }
    countNative(kernelName);
    return out;
  };
}

/**
 * A float32 output of n elements whose memory is not zeroed, for native kernels that write every
 * element (not pad, whose border is the zeros). `new Float32Array(n)` zero-fills: for the activations
 * of a training step (up to 33 MB each, hundreds per step) that is a wasted pass over memory, and on a
 * fresh mapping the kernel's first writes also pay a page fault per 4 KiB.
 */
export function outputArray(n: number): Float32Array {
  if (n === 0) return new Float32Array(0);
  const bytes = Buffer.allocUnsafeSlow(n * Float32Array.BYTES_PER_ELEMENT);
  const out = new Float32Array(bytes.buffer, bytes.byteOffset, n);
  // The test suite sets it: an element a kernel forgets to write is then NaN, not a lucky zero.
  if (POISON) out.fill(NaN);
  return out;
}

const POISON = process.env.SIMTRIP_POISON_OUTPUTS === '1';
