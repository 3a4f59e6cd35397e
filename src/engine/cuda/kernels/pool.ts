/**
 * MaxPool, AvgPool and their gradients: our own kernels in native/cuda/kernels/pool.cu (not cuDNN), so
 * ties, NaN, padding and the average's divisors follow tfjs-backend-cpu exactly. float32 NHWC only.
 */
import { tf } from '../../tf.js';
import { sameShape } from '../../../util/values.js';
import { addonOf, alias, type CudaKernel, type KernelTable, output } from './common.js';

interface PoolAddon {
  maxPool(x: number, out: number, params: Int32Array): void;
  maxPoolGrad(dy: number, x: number, out: number, params: Int32Array): void;
  avgPool(x: number, out: number, params: Int32Array): void;
  avgPoolGrad(dy: number, out: number, params: Int32Array): void;
}

type Shape4 = [number, number, number, number];
type PoolInfo = tf.backend_util.Conv2DInfo;

function poolInfo(shape: readonly number[], a: { filterSize: number | [number, number]; strides: number | [number, number]; pad: tf.MaxPoolAttrs['pad']; dimRoundingMode?: tf.MaxPoolAttrs['dimRoundingMode'] }): PoolInfo | null {
  if (shape.length !== 4) return null;
  return tf.backend_util.computePool2DInfo(shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
}

/** Int32Array layout of the P enum in native/cuda/kernels/pool.cu. */
function poolParams(info: PoolInfo): Int32Array | null {
  const sizes = [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth];
  if (sizes.some((v) => !Number.isInteger(v) || v <= 0)) return null;
  const { top, left } = info.padInfo;
  if (!Number.isInteger(top) || !Number.isInteger(left) || top < 0 || left < 0) return null;
  return Int32Array.from([...sizes, top, left]);
}

/** tfjs' cpu kernels return their input for a 1x1 window that keeps the shape (NaN included). */
function isIdentity(info: PoolInfo): boolean {
  return info.filterHeight === 1 && info.filterWidth === 1 && sameShape(info.inShape, info.outShape);
}

function forward(kind: 'maxPool' | 'avgPool'): CudaKernel {
  return ({ inputs, attrs }, backend) => {
    const { x } = inputs as { x: tf.TensorInfo };
    if (x.dtype !== 'float32') return null;
    const info = poolInfo(x.shape, attrs as unknown as tf.MaxPoolAttrs);
    if (!info) return null;
    if (isIdentity(info)) {
      return alias(backend, x);
    }
    const params = poolParams(info);
    if (!params) return null;
    const out = output(backend, info.outShape, 'float32');
    addonOf<PoolAddon>(backend)[kind](backend.ptr(x), out.ptr, params);
    return out.info;
  };
}

const maxPoolGrad: CudaKernel = ({ inputs, attrs }, backend) => {
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  if (dy.dtype !== 'float32' || input.dtype !== 'float32') return null;
  const info = poolInfo(input.shape, attrs as unknown as tf.MaxPoolGradAttrs);
  const params = info && sameShape(dy.shape, info.outShape) ? poolParams(info) : null;
  if (!params) return null;
  const out = output(backend, [...input.shape], 'float32');
  addonOf<PoolAddon>(backend).maxPoolGrad(backend.ptr(dy), backend.ptr(input), out.ptr, params);
  return out.info;
};

const avgPoolGrad: CudaKernel = ({ inputs, attrs }, backend) => {
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  if (dy.dtype !== 'float32') return null;
  // tfjs' cpu kernel sizes the windows without dimRoundingMode; so does this one.
  const { filterSize, strides, pad } = attrs as unknown as tf.AvgPoolGradAttrs;
  const info = poolInfo(input.shape, { filterSize, strides, pad });
  const params = info && sameShape(dy.shape, info.outShape) ? poolParams(info) : null;
  if (!params) return null;
  const out = output(backend, [...input.shape], 'float32');
  addonOf<PoolAddon>(backend).avgPoolGrad(backend.ptr(dy), out.ptr, params);
  return out.info;
};

export const POOL_KERNELS: KernelTable = {
  [tf.MaxPool]: forward('maxPool'),
  [tf.MaxPoolGrad]: maxPoolGrad,
  [tf.AvgPool]: forward('avgPool'),
  [tf.AvgPoolGrad]: avgPoolGrad,
};
