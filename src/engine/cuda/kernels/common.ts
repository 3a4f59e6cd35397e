/** What every CUDA kernel module needs: the kernel type, the addon view and output allocation. */
import { tf } from '../../tf.js';
import type { CudaBackend } from '../backend.js';
import type { CudaAddon } from '../native.js';

export type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * A native kernel: returns null when it does not cover the case (a dtype, a rare attribute), and the
 * cpu kernel then runs through the counted host fallback.
 */
export type CudaKernel = (args: KernelArgs, backend: CudaBackend) => tf.TensorInfo | tf.TensorInfo[] | null;

export type KernelTable = Readonly<Record<string, CudaKernel>>;

/** The addon with the functions a kernel module declares (each module adds its own). */
export function addonOf<T>(backend: CudaBackend): CudaAddon & T {
  return backend.addon as CudaAddon & T;
}

/**
 * The same device memory under another shape or dtype (Reshape, Identity, a cast that changes
 * nothing): one more reference to x's data, no copy.
 */
export function alias(backend: CudaBackend, x: tf.TensorInfo, shape: number[] = [...x.shape], dtype: tf.DataType = x.dtype): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape, dtype };
}

/** A fresh output tensor with uninitialised device memory, and its pointer. */
export function output(backend: CudaBackend, shape: number[], dtype: tf.DataType): { info: tf.TensorInfo; ptr: number } {
  const info = backend.makeTensorInfo(shape, dtype);
  return { info, ptr: backend.ptr(info) };
}

/** Integer dtype codes shared with native/cuda/kernels/*.cu: float32 = 0, int32 (and bool) = 1. */
export function dtypeCode(dtype: tf.DataType): 0 | 1 | null {
  if (dtype === 'float32') return 0;
  if (dtype === 'int32' || dtype === 'bool') return 1;
  return null;
}
