/** BatchMatMul and _FusedMatMul on oneDNN's matmul primitive. */
import { tf } from '../../tf.js';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from '../native.js';
import { channelBias, f32, type KernelArgs, type NativeKernel, outputArray } from './common.js';
import { matmulShape } from '../../matmul_shape.js';
import { sizeOf } from '../../../util/values.js';

function run(
  backend: MathBackendCPU,
  addon: NativeAddon,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  epilogue: { bias: tf.TensorInfo | undefined; relu: boolean },
): tf.TensorInfo | null {
  const as = f32(backend, a);
  const bs = f32(backend, b);
  if (!as || !bs) return null;
  const shape = matmulShape(a.shape, b.shape, transposeA, transposeB);
  if (!shape) return null;
  let bias: Float32Array | null = null;
  if (epilogue.bias) {
    bias = channelBias(backend, epilogue.bias, shape.n, shape.outShape.length);
    if (!bias) return null;
  }
  const params = Int32Array.from([
    shape.batchA,
    shape.batchB,
    shape.m,
    shape.n,
    shape.k,
    transposeA ? 1 : 0,
    transposeB ? 1 : 0,
    epilogue.relu ? 1 : 0,
    bias ? 1 : 0,
  ]);
  const out = outputArray(sizeOf(shape.outShape));
  addon.matmul(as, bs, bias, out, params);
  return backend.makeTensorInfo(shape.outShape, 'float32', out);
}

export const batchMatMul: NativeKernel = ({ inputs, attrs }: KernelArgs, backend, addon) => {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  return run(backend, addon, a, b, !!transposeA, !!transposeB, { bias: undefined, relu: false });
};

export const fusedMatMul: NativeKernel = ({ inputs, attrs }: KernelArgs, backend, addon) => {
  const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
  const { transposeA, transposeB, activation } = attrs as unknown as tf._FusedMatMulAttrs;
  if (activation !== undefined && activation !== 'linear' && activation !== 'relu') return null;
  return run(backend, addon, a, b, !!transposeA, !!transposeB, { bias, relu: activation === 'relu' });
};
