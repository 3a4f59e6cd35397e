/**
 * The fused SGD update (simtrip's SimtripSgdUpdate, src/engine/custom_kernels.ts) on the CUDA engine:
 * native/cuda/kernels/sgd.cu, one pass per parameter, bit-identical to the composed ops of
 * src/optim/sgd.ts on the cpu backend. A gradient stored as halves (mixed16) is read as it is. The
 * gated variant reads its gate on the device, so a step's update is queued before its loss is read.
 */
import { tf } from '../../tf.js';
import { SGD_UPDATE, SGD_UPDATE_GATED, type SgdUpdateAttrs } from '../../custom_kernels.js';
import { sizeOf } from '../../../util/values.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { float32Input, float32OrHalvesInput } from './custom.js';

interface OptimAddon {
  /**
   * A 0 buf is the first step (the buffer starts as the decayed gradient); gHalf: g is stored as halves;
   * gate: a float32 scalar on the device, the update applied only where it is 1 (0: always applied).
   */
  sgdUpdate(
    w: number, g: number, buf: number, wOut: number, bufOut: number, n: number, lr: number, momentum: number, weightDecay: number, gHalf: boolean,
    gate: number,
  ): void;
}

/** SGD_UPDATE, and SGD_UPDATE_GATED with its `gate` input. */
const sgdUpdate: CudaKernel = ({ inputs, attrs }, backend) => {
  const { w, g, buf, gate } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo; buf?: tf.TensorInfo; gate?: tf.TensorInfo };
  const { lr, momentum, weightDecay, first } = attrs as unknown as SgdUpdateAttrs;
  const size = sizeOf(w.shape);
  const wp = float32Input(backend, w, SGD_UPDATE, 'w', size);
  const gs = float32OrHalvesInput(backend, g, SGD_UPDATE, 'g', size);
  const bp = first ? 0 : float32Input(backend, buf, SGD_UPDATE, 'buf', size);
  const newW = output(backend, [...w.shape], 'float32');
  const newBuf = output(backend, [...w.shape], 'float32');
  const gp = gate ? float32Input(backend, gate, SGD_UPDATE_GATED, 'gate', 1) : 0;
  addonOf<OptimAddon>(backend).sgdUpdate(wp, gs.ptr, bp, newW.ptr, newBuf.ptr, size, lr, momentum, weightDecay, gs.half, gp);
  return [newW.info, newBuf.info];
};

export const OPTIM_KERNELS: KernelTable = {
  [SGD_UPDATE]: sgdUpdate,
  [SGD_UPDATE_GATED]: sgdUpdate,
};
