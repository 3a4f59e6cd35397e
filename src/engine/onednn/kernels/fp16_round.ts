/**
 * The float16 rounding of src/ops/fp16_round.ts as a native kernel of the onednn backend
 * (native/onednn/eltwise.cc: one pass over the bit patterns instead of the cpu backend's JS loop).
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import { ROUND_TO_HALF } from '../../../ops/fp16_round.js';
import type { NativeAddon } from '../native.js';
import { countNative } from '../../kernel_stats.js';
import { sizeOf } from '../../../util/values.js';
import { requireF32, outputArray } from './common.js';

type Addon = Required<Pick<NativeAddon, 'roundToHalf'>>;

function roundKernel(addon: Addon): tf.KernelFunc {
  return ({ inputs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { x } = inputs as { x: tf.TensorInfo };
    const xs = requireF32(cpu, x, ROUND_TO_HALF, 'x', sizeOf(x.shape));
    const out = outputArray(xs.length);
    addon.roundToHalf(xs, out);
    countNative(ROUND_TO_HALF);
    return cpu.makeTensorInfo([...x.shape], 'float32', out);
  };
}

/**
 * Registers the native kernel on `backendName`, replacing the JS kernel the backend copied from 'cpu'
 * (its gradient is registered with the op). An addon built before roundToHalf existed registers
 * nothing and the copied JS kernel stays: same results, slower.
 */
export function registerRoundToHalfKernel(backendName: string, addon: NativeAddon): boolean {
  if (typeof addon.roundToHalf !== 'function') return false;
  if (tf.getKernel(ROUND_TO_HALF, backendName)) tf.unregisterKernel(ROUND_TO_HALF, backendName);
  tf.registerKernel({ kernelName: ROUND_TO_HALF, backendName, kernelFunc: roundKernel(addon as Addon) });
  return true;
}
