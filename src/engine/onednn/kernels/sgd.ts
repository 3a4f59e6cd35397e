/**
 * The whole SGD update of one parameter as one kernel of the onednn backend (native/onednn/sgd.cc). It has no
 * cpu counterpart: src/optim/sgd.ts runs it only where it is registered and composes standard ops
 * everywhere else.
 */
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from '../../tf.js';
import type { NativeAddon } from '../native.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '../../custom_kernels.js';
import { countNative } from '../../kernel_stats.js';
import { sizeOf } from '../../../util/values.js';
import { requireF32, outputArray } from './common.js';

type Addon = Required<Pick<NativeAddon, 'sgdUpdate'>>;

function sgdKernel(addon: Addon): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    const cpu = backend as MathBackendCPU;
    const { w, g, buf } = inputs as { w: tf.TensorInfo; g: tf.TensorInfo; buf?: tf.TensorInfo };
    const { lr, momentum, weightDecay, first } = attrs as unknown as SgdUpdateAttrs;
    const size = sizeOf(w.shape);
    const ws = requireF32(cpu, w, SGD_UPDATE, 'w', size);
    const gs = requireF32(cpu, g, SGD_UPDATE, 'g', size);
    const bufs = first ? null : requireF32(cpu, buf, SGD_UPDATE, 'buf', size);
    const newW = outputArray(size);
    const newBuf = outputArray(size);
    addon.sgdUpdate(ws, gs, bufs, newW, newBuf, lr, momentum, weightDecay);
    countNative(SGD_UPDATE);
    return [cpu.makeTensorInfo([...w.shape], 'float32', newW), cpu.makeTensorInfo([...w.shape], 'float32', newBuf)];
  };
}

/** Registers the kernel on `backendName`; an addon built before native/onednn/sgd.cc existed registers nothing. */
export function registerSgdKernel(backendName: string, addon: NativeAddon): boolean {
  if (typeof addon.sgdUpdate !== 'function') return false;
  tf.registerKernel({ kernelName: SGD_UPDATE, backendName, kernelFunc: sgdKernel(addon as Addon) });
  return true;
}
