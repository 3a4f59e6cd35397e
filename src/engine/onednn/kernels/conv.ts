/** Conv2D, FusedConv2D and both convolution gradients on oneDNN. */
import { tf } from '../../tf.js';
import { channelBias, f32, type NativeKernel, outputArray } from './common.js';
import { convParams } from '../../conv_params.js';
import { sameShape, sizeOf } from '../../../util/values.js';

type Shape4 = [number, number, number, number];

function is4d(shape: readonly number[]): shape is Shape4 {
  return shape.length === 4;
}

export const conv2D: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DAttrs;
  const xs = f32(backend, x);
  const ws = f32(backend, filter);
  if (!xs || !ws || a.dataFormat !== 'NHWC' || !is4d(x.shape) || !is4d(filter.shape)) return null;
  if (filter.shape[2] !== x.shape[3]) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  const params = convParams(info, { relu: false, bias: false });
  if (!params) return null;
  const out = outputArray(sizeOf(info.outShape));
  addon.convForward(xs, ws, null, out, params);
  return backend.makeTensorInfo(info.outShape, 'float32', out);
};

export const fusedConv2D: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { x, filter, bias } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo };
  const a = attrs as unknown as tf.FusedConv2DAttrs;
  // prelu/leakyrelu/elu/sigmoid/relu6 are rare in simtrip's models; the cpu kernel keeps them exact.
  if (a.activation !== undefined && a.activation !== 'linear' && a.activation !== 'relu') return null;
  const xs = f32(backend, x);
  const ws = f32(backend, filter);
  if (!xs || !ws || a.dataFormat !== 'NHWC' || !is4d(x.shape) || !is4d(filter.shape)) return null;
  if (filter.shape[2] !== x.shape[3]) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  let biasValues: Float32Array | null = null;
  if (bias) {
    biasValues = channelBias(backend, bias, info.outChannels, 4);
    if (!biasValues) return null;
  }
  const params = convParams(info, { relu: a.activation === 'relu', bias: biasValues !== null });
  if (!params) return null;
  const out = outputArray(sizeOf(info.outShape));
  addon.convForward(xs, ws, biasValues, out, params);
  return backend.makeTensorInfo(info.outShape, 'float32', out);
};

export const conv2DBackpropInput: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const dys = f32(backend, dy);
  const ws = f32(backend, filter);
  const inputShape = [...a.inputShape];
  if (!dys || !ws || a.dataFormat !== 'NHWC' || !is4d(inputShape) || !is4d(filter.shape)) return null;
  if (filter.shape[2] !== inputShape[3]) return null;
  const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!sameShape(dy.shape, info.outShape)) return null;
  const params = convParams(info, { relu: false, bias: false });
  if (!params) return null;
  const out = outputArray(sizeOf(inputShape));
  addon.convBackwardData(dys, ws, out, params);
  return backend.makeTensorInfo(inputShape, 'float32', out);
};

export const conv2DBackpropFilter: NativeKernel = ({ inputs, attrs }, backend, addon) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const xs = f32(backend, x);
  const dys = f32(backend, dy);
  const filterShape = [...a.filterShape];
  if (!xs || !dys || a.dataFormat !== 'NHWC' || !is4d(x.shape) || !is4d(filterShape)) return null;
  if (filterShape[2] !== x.shape[3]) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!sameShape(dy.shape, info.outShape)) return null;
  const params = convParams(info, { relu: false, bias: false });
  if (!params) return null;
  const out = outputArray(sizeOf(filterShape));
  addon.convBackwardWeights(xs, dys, out, params);
  return backend.makeTensorInfo(filterShape, 'float32', out);
};
