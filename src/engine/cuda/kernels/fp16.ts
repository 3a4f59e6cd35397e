/**
 * Mixed-precision kernels of the CUDA engine (native/cuda/kernels/fp16.cu): the rounding to the half
 * grid of src/ops/fp16_round.ts, replacing the cpu backend's JS kernel that the backend would
 * otherwise copy, and the finiteness check of dynamic loss scaling (src/optim/loss_scale.ts) over every
 * gradient at once, without a read-back until its one boolean is needed (reading half-stored gradients
 * as they are).
 */
import { tf } from '../../tf.js';
import { ROUND_TO_HALF } from '../../../ops/fp16_round.js';
import { ALL_FINITE } from '../../custom_kernels.js';
import { sizeOf } from '../../../util/values.js';
import { addonOf, alias, type CudaKernel, type KernelTable, output } from './common.js';
import { float32OrHalvesInput } from './custom.js';

interface Fp16Addon {
  /** out holds n halves: x rounded to the half grid. */
  roundIntoHalves(x: number, out: number, n: number): void;
  /** out (int32) = 1 when every element is finite; tensors holds (pointer, size, 1 if stored as halves else 0) triples. */
  allFinite(out: number, tensors: Float64Array): void;
}

/**
 * The result is stored as halves (see backend.ts): it is exactly what a float16 tensor of autocast
 * holds, at half the bytes. A tensor already stored as halves is on the grid: the same memory again.
 */
const roundToHalf: CudaKernel = ({ inputs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  if (x.dtype !== 'float32') return null;
  if (backend.isHalf(x)) {
    return alias(backend, x);
  }
  const size = sizeOf(x.shape);
  const out = backend.makeHalfTensorInfo([...x.shape]);
  if (size > 0) addonOf<Fp16Addon>(backend).roundIntoHalves(backend.ptr(x), backend.storagePtr(out), size);
  return out;
};

/** Inputs: any number of float32 tensors, under any names; output: a bool scalar. */
const allFinite: CudaKernel = ({ inputs }, backend) => {
  const list = Object.values(inputs).filter((t): t is tf.TensorInfo => t != null);
  const table = new Float64Array(3 * list.length);
  list.forEach((t, i) => {
    const size = sizeOf(t.shape);
    const input = float32OrHalvesInput(backend, t, ALL_FINITE, `input ${i}`, size);
    table.set([input.ptr, size, input.half ? 1 : 0], 3 * i);
  });
  const out = output(backend, [], 'bool');
  addonOf<Fp16Addon>(backend).allFinite(out.ptr, table);
  return out.info;
};

export const FP16_KERNELS: KernelTable = {
  [ROUND_TO_HALF]: roundToHalf,
  [ALL_FINITE]: allFinite,
};
