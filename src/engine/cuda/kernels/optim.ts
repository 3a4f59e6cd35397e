/**
 * The fused SGD update (simtrip's SimtripSgdUpdate, src/engine/custom_kernels.ts) on the CUDA engine:
 * native/cuda/kernels/sgd.cu, one pass per parameter, bit-identical to the composed ops of
 * src/optim/sgd.ts on the cpu backend. A gradient stored as halves (mixed16) is read as it is.
 */
import { tf } from '../../tf.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '../../custom_kernels.js';
import { sizeOf } from '../../../util/values.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { float32Input, float32OrHalvesInput } from './custom.js';

interface OptimAddon {
  /** A 0 buf is the first step (the buffer starts as the decayed gradient); gHalf: g is stored as halves. */
  sgdUpdate(
    w: number, g: number, buf: number, wOut: number, bufOut: number, n: number, lr: number, momentum: number, weightDecay: number, gHalf: boolean,
  ): void;
}

const sgdUpdate: CudaKernel = ({ inputs, attrs }, backend) => {
  const { w, g, buf } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo; buf?: tf.TensorInfo };
  const { lr, momentum, weightDecay, first } = attrs as unknown as SgdUpdateAttrs;
  const size = sizeOf(w.shape);
  const wp = float32Input(backend, w, SGD_UPDATE, 'w', size);
  const gs = float32OrHalvesInput(backend, g, SGD_UPDATE, 'g', size);
  const bp = first ? 0 : float32Input(backend, buf, SGD_UPDATE, 'buf', size);
  const newW = output(backend, [...w.shape], 'float32');
  const newBuf = output(backend, [...w.shape], 'float32');
  addonOf<OptimAddon>(backend).sgdUpdate(wp, gs.ptr, bp, newW.ptr, newBuf.ptr, size, lr, momentum, weightDecay, gs.half);
  return [newW.info, newBuf.info];
};

export const OPTIM_KERNELS: KernelTable = {
  [SGD_UPDATE]: sgdUpdate,
};
