/** MaxPool and MaxPoolGrad (hand-written loops in native/onednn/pool.cc, tie-breaking as tfjs-backend-cpu). */
import { tf } from '../../tf.js';
import { f32, type NativeKernel, outputArray } from './common.js';
import { sizeOf } from '../../../util/values.js';
import { sameShape } from '../../../util/values.js';

type Shape4 = [number, number, number, number];

function poolParams(info: tf.backend_util.Conv2DInfo): Int32Array | null {
  const values = [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outHeight,
    info.outWidth,
    info.filterHeight,
    info.filterWidth,
    info.strideHeight,
    info.strideWidth,
  ];
  if (values.some((v) => !Number.isInteger(v) || v <= 0)) return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const { top, left } = info.padInfo;
  if (!Number.isInteger(top) || !Number.isInteger(left) || top < 0 || left < 0) return null;
  return Int32Array.from([...values, top, left]);
}

export const maxPool: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const a = attrs as unknown as tf.MaxPoolAttrs;
  const xs = f32(backend, x);
  if (!xs || x.shape.length !== 4) return null;
  const info = tf.backend_util.computePool2DInfo(x.shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const params = poolParams(info);
  if (!params) return null;
  const out = outputArray(sizeOf(info.outShape));
  addon.maxPool(xs, out, params);
  return backend.makeTensorInfo(info.outShape, 'float32', out);
};

export const maxPoolGrad: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const a = attrs as unknown as tf.MaxPoolGradAttrs;
  const dys = f32(backend, dy);
  const xs = f32(backend, input);
  if (!dys || !xs || input.shape.length !== 4) return null;
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  if (!sameShape(dy.shape, info.outShape)) return null;
  const params = poolParams(info);
  if (!params) return null;
  const out = outputArray(sizeOf(input.shape));
  addon.maxPoolGrad(dys, xs, out, params);
  return backend.makeTensorInfo([...input.shape], 'float32', out);
};
