/**
 * The fused SGD update (simtrip's SimtripSgdUpdate, src/engine/custom_kernels.ts) on the CUDA engine:
 * native/cuda/kernels/sgd.cu, one pass per parameter, bit-identical to the composed ops of
 * src/optim/sgd.ts on the cpu backend.
 */
import { tf } from '../../tf.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '../../custom_kernels.js';
import { sizeOf } from '../../../util/values.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { float32Input } from './custom.js';

interface OptimAddon {
  /** A 0 buf is the first step (the buffer starts as the decayed gradient). */
  sgdUpdate(w: number, g: number, buf: number, wOut: number, bufOut: number, n: number, lr: number, momentum: number, weightDecay: number): void;
}

const sgdUpdate: CudaKernel = ({ inputs, attrs }, backend) => {
  const { w, g, buf } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo; buf?: tf.TensorInfo };
  const { lr, momentum, weightDecay, first } = attrs as unknown as SgdUpdateAttrs;
  const size = sizeOf(w.shape);
  const wp = float32Input(backend, w, SGD_UPDATE, 'w', size);
  const gp = float32Input(backend, g, SGD_UPDATE, 'g', size);
  const bp = first ? 0 : float32Input(backend, buf, SGD_UPDATE, 'buf', size);
  const newW = output(backend, [...w.shape], 'float32');
  const newBuf = output(backend, [...w.shape], 'float32');
  addonOf<OptimAddon>(backend).sgdUpdate(wp, gp, bp, newW.ptr, newBuf.ptr, size, lr, momentum, weightDecay);
  return [newW.info, newBuf.info];
};

export const OPTIM_KERNELS: KernelTable = {
  [SGD_UPDATE]: sgdUpdate,
};
