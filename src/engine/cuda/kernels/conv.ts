/**
 * Conv2D, FusedConv2D and both convolution gradients: native/cuda/conv.cu, which reorders tfjs' HWIO
 * filters for cuDNN (the host build: reference loops), pads asymmetric 'same' padding explicitly and
 * applies FusedConv2D's bias and relu. float32 NHWC only; anything else runs on the host.
 *
 * The reordered (KRSC) filter is not cached between calls, although the same weight feeds the forward
 * pass of both views and both backward-data passes: a cache keyed by the filter's storage entry could
 * be invalidated correctly (the backend replaces an entry on move and deletes it on dispose), but
 * without a dispose hook in backend.ts its copies would outlive the weights until the next convolution
 * noticed, showing as device memory in use after everything is disposed. The reorder reads and writes
 * the filter once (a 3x3x512x512 filter: 19 MB, about 10 us on an H100) next to convolutions of 100 us
 * (64 px) to milliseconds (224 px) each, so a cache would save a few percent of a step at most.
 */
import { tf } from '../../tf.js';
import { convParams } from '../../conv_params.js';
import { sameShape } from '../../../util/values.js';
import type { CudaBackend } from '../backend.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';

interface ConvAddon {
  /** biasLength: the output channel count, or 1 for one value added everywhere; read only when params says there is a bias. */
  convForward(x: number, filter: number, bias: number, biasLength: number, out: number, params: Int32Array): void;
  convBackwardData(dy: number, filter: number, out: number, params: Int32Array): void;
  /** out in HWIO. */
  convBackwardFilter(x: number, dy: number, out: number, params: Int32Array): void;
  setMathMode(convTf32: boolean, matmulTf32: boolean): void;
}

/**
 * Whether convolutions and matrix products may use TF32 tensor cores (faster, 10-bit mantissa
 * products). Both are exact fp32 until this is called.
 */
export function setCudaMathMode(backend: CudaBackend, mode: { convTf32: boolean; matmulTf32: boolean }): void {
  addonOf<ConvAddon>(backend).setMathMode(mode.convTf32, mode.matmulTf32);
}

/**
 * How many values a fused bias holds when tfjs' broadcasting add would add it along the last axis of
 * an output of rank `outRank` with `channels` there: `channels`, or 1 for a single value. null when the
 * add would do something else (change the rank, broadcast along another axis) or the bias is not float32.
 */
export function epilogueBiasLength(bias: tf.TensorInfo, channels: number, outRank: number): number | null {
  if (bias.dtype !== 'float32' || bias.shape.length > outRank) return null;
  if (bias.shape.slice(0, -1).some((d) => d !== 1)) return null;
  const last = bias.shape.length === 0 ? 1 : bias.shape[bias.shape.length - 1]!;
  return last === channels || last === 1 ? last : null;
}

type Conv2DInfo = tf.backend_util.Conv2DInfo;

function channelsLastInfo(xShape: readonly number[], filterShape: readonly number[], strides: number | [number, number], dilations: number | [number, number], pad: tf.Conv2DAttrs['pad'], rounding: tf.Conv2DAttrs['dimRoundingMode']): Conv2DInfo | null {
  if (xShape.length !== 4 || filterShape.length !== 4 || filterShape[2] !== xShape[3]) return null;
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    dilations,
    pad,
    rounding,
    false,
    'channelsLast',
  );
}

const conv2D: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DAttrs;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || a.dataFormat !== 'NHWC') return null;
  const info = channelsLastInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode);
  const params = info && convParams(info, { relu: false, bias: false });
  if (!info || !params) return null;
  const out = output(backend, info.outShape, 'float32');
  addonOf<ConvAddon>(backend).convForward(backend.ptr(x), backend.ptr(filter), 0, 0, out.ptr, params);
  return out.info;
};

const fusedConv2D: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x, filter, bias } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo };
  const a = attrs as unknown as tf.FusedConv2DAttrs;
  // prelu, leakyrelu, elu, sigmoid and relu6 do not occur in simtrip's models; the host keeps them exact.
  const activation = a.activation ?? 'linear';
  if (activation !== 'linear' && activation !== 'relu') return null;
  if (x.dtype !== 'float32' || filter.dtype !== 'float32' || a.dataFormat !== 'NHWC') return null;
  const info = channelsLastInfo(x.shape, filter.shape, a.strides, a.dilations, a.pad, a.dimRoundingMode);
  if (!info) return null;
  const biasLength = bias ? epilogueBiasLength(bias, info.outChannels, 4) : 0;
  if (biasLength === null) return null;
  const params = convParams(info, { relu: activation === 'relu', bias: biasLength > 0 });
  if (!params) return null;
  const out = output(backend, info.outShape, 'float32');
  addonOf<ConvAddon>(backend).convForward(backend.ptr(x), backend.ptr(filter), bias ? backend.ptr(bias) : 0, biasLength, out.ptr, params);
  return out.info;
};

const conv2DBackpropInput: CudaKernel = ({ inputs, attrs }, backend) => {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32' || a.dataFormat !== 'NHWC') return null;
  const inputShape = [...a.inputShape];
  const info = channelsLastInfo(inputShape, filter.shape, a.strides, 1, a.pad, a.dimRoundingMode);
  if (!info || !sameShape(dy.shape, info.outShape)) return null;
  const params = convParams(info, { relu: false, bias: false });
  if (!params) return null;
  const out = output(backend, inputShape, 'float32');
  addonOf<ConvAddon>(backend).convBackwardData(backend.ptr(dy), backend.ptr(filter), out.ptr, params);
  return out.info;
};

const conv2DBackpropFilter: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || a.dataFormat !== 'NHWC') return null;
  const filterShape = [...a.filterShape];
  const info = channelsLastInfo(x.shape, filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
  if (!info || !sameShape(dy.shape, info.outShape)) return null;
  const params = convParams(info, { relu: false, bias: false });
  if (!params) return null;
  const out = output(backend, filterShape, 'float32');
  addonOf<ConvAddon>(backend).convBackwardFilter(backend.ptr(x), backend.ptr(dy), out.ptr, params);
  return out.info;
};

export const CONV_KERNELS: KernelTable = {
  [tf.Conv2D]: conv2D,
  [tf.FusedConv2D]: fusedConv2D,
  [tf.Conv2DBackpropInput]: conv2DBackpropInput,
  [tf.Conv2DBackpropFilter]: conv2DBackpropFilter,
};
