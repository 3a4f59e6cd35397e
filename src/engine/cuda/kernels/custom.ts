/**
 * Input checks for simtrip's own kernels (src/engine/custom_kernels.ts) on the CUDA engine. They have
 * no cpu version to fall back to, so a wrong input is an error that names it, not a null.
 */
import { tf } from '../../tf.js';
import type { CudaBackend } from '../backend.js';
import { sizeOf } from '../../../util/values.js';

function checkFloat32(t: tf.TensorInfo | undefined, kernel: string, name: string, length: number): tf.TensorInfo {
  if (!t) throw new Error(`${kernel}: missing input ${name}`);
  if (t.dtype !== 'float32') throw new Error(`${kernel}: ${name} must be float32, got ${t.dtype}`);
  const size = sizeOf(t.shape);
  if (size !== length) throw new Error(`${kernel}: ${name} has ${size} elements, expected ${length}`);
  return t;
}

/** The device pointer of a float32 input with `length` elements (0 for an empty one). */
export function float32Input(backend: CudaBackend, t: tf.TensorInfo | undefined, kernel: string, name: string, length: number): number {
  return backend.ptr(checkFloat32(t, kernel, name, length));
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
  const checked = checkFloat32(t, kernel, name, length);
  return { ptr: backend.storagePtr(checked), half: backend.isHalf(checked) };
}
