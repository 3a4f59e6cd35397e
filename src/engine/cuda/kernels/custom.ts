/**
 * Inputs of simtrip's own kernels (src/engine/custom_kernels.ts) on the CUDA engine: checked by
 * checkedFloat32Input, then handed over as device memory.
 */
import { tf } from '../../tf.js';
import type { CudaBackend } from '../backend.js';
import { checkedFloat32Input } from '../../custom_kernels.js';

/** The device pointer of a float32 input with `length` elements (0 for an empty one). */
export function float32Input(backend: CudaBackend, t: tf.TensorInfo | undefined, kernel: string, name: string, length: number): number {
  return backend.ptr(checkedFloat32Input(t, kernel, name, length));
}

/**
 * A float32 input for a native kernel that reads half-stored tensors itself: its own memory (no
 * float32 copy) and whether that memory holds halves.
 */
export function float32OrHalvesInput(
  backend: CudaBackend,
  t: tf.TensorInfo | undefined,
  kernel: string,
  name: string,
  length: number,
): { ptr: number; half: boolean } {
  const checked = checkedFloat32Input(t, kernel, name, length);
  return { ptr: backend.storagePtr(checked), half: backend.isHalf(checked) };
}
