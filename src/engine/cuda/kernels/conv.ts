/**
 * Conv2D, FusedConv2D and both convolution gradients: native/cuda/conv.cu, which reorders tfjs' HWIO
 * filters for cuDNN (the host build: reference loops), pads asymmetric 'same' padding explicitly and
 * applies FusedConv2D's bias and relu. float32 NHWC only; anything else runs on the host.
 *
 * Half storage (mixed16): when both operands of Conv2D, Conv2DBackpropInput or Conv2DBackpropFilter
 * are stored as halves, the convolution reads them directly (fp16 tensor cores on the GPU, float32
 * accumulation) and writes its output as halves: the float32 sum rounded once to the nearest half.
 * That is exactly what the emulation computes, because under mixed16 nothing sees a convolution's
 * float32 result before it is rounded to the half grid:
 *  - forward: Conv2d.apply (src/model/layers.ts) is roundToHalf(conv2d(roundToHalf(x), roundToHalf(w)))
 *    for the layers without a bias, which are all of simtrip's (resnet.ts builds none with one);
 *  - backward: the gradients with respect to roundToHalf(x) and roundToHalf(w) reach roundToHalf's
 *    gradient (src/ops/fp16_round.ts) as they are, since each of those tensors has the convolution as
 *    its only consumer, and it rounds them to the half grid. Rounding twice equals rounding once.
 * So only the float32 summation order can differ (a sum within a float32 rounding of a half tie may
 * land one half-ulp apart). The one case this does not cover is a Conv2d with a bias under mixed16:
 * its bias would be added to an already rounded output, one rounding more than the emulation (at most
 * one half-ulp off); no model builds one. FusedConv2D (bias, activation) is not used under mixed16 and
 * stays float32. With one operand half-stored and the other not, the float32 path runs (the backend
 * hands it a float32 copy of the halves).
 *
 * Filters go to the addon in cuDNN's KRSC layout, made once per weight version by the backend
 * (CudaBackend.krscFilter) and shared by the forward pass of every view and every backward-data pass
 * of the step; the copy is freed with the weight's tensor.
 */
import { tf } from '../../tf.js';
import { convParams } from '../../conv_params.js';
import { sameShape } from '../../../util/values.js';
import type { CudaBackend } from '../backend.js';
import { countNative } from '../../kernel_stats.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';

/** Filters in KRSC (CudaBackend.krscFilter), not tfjs' HWIO. */
interface ConvAddon {
  /** biasLength: the output channel count, or 1 for one value added everywhere; read only when params says there is a bias. */
  convForward(x: number, filter: number, bias: number, biasLength: number, out: number, params: Int32Array): void;
  convBackwardData(dy: number, filter: number, out: number, params: Int32Array): void;
  /** out in HWIO. */
  convBackwardFilter(x: number, dy: number, out: number, params: Int32Array): void;
  /** The same three on halves, out included (params without bias or relu). */
  convForwardHalves(x: number, filter: number, out: number, params: Int32Array): void;
  convBackwardDataHalves(dy: number, filter: number, out: number, params: Int32Array): void;
  convBackwardFilterHalves(x: number, dy: number, out: number, params: Int32Array): void;
}

/** The suffix of the nativeRuns entry counted, besides the kernel's own, when a kernel ran on halves ('Conv2D/half'). */
export const HALF_RUN = '/half';

/**
 * The half path of a convolution: when both operands are half-stored, `run` gets their storage (the
 * filter's KRSC halves when `b` is the filter) and a half-stored output of `shape` to fill, and the run
 * is counted as `${kernelName}/half`. null when the float32 path applies.
 */
function onHalves(backend: CudaBackend, kernelName: string, a: tf.TensorInfo, b: tf.TensorInfo, bIsFilter: boolean, shape: number[], run: (a: number, b: number, out: number) => void): tf.TensorInfo | null {
  if (!backend.isHalf(a) || !backend.isHalf(b)) return null;
  const out = backend.makeHalfTensorInfo(shape);
  run(backend.storagePtr(a), bIsFilter ? backend.krscFilter(b, true) : backend.storagePtr(b), backend.storagePtr(out));
  countNative(kernelName + HALF_RUN);
  return out;
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
  const addon = addonOf<ConvAddon>(backend);
  const half = onHalves(backend, tf.Conv2D, x, filter, true, info.outShape, (xp, fp, out) => addon.convForwardHalves(xp, fp, out, params));
  if (half) return half;
  const out = output(backend, info.outShape, 'float32');
  addon.convForward(backend.ptr(x), backend.krscFilter(filter, false), 0, 0, out.ptr, params);
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
  addonOf<ConvAddon>(backend).convForward(backend.ptr(x), backend.krscFilter(filter, false), bias ? backend.ptr(bias) : 0, biasLength, out.ptr, params);
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
  const addon = addonOf<ConvAddon>(backend);
  const half = onHalves(backend, tf.Conv2DBackpropInput, dy, filter, true, inputShape, (dyp, fp, out) => addon.convBackwardDataHalves(dyp, fp, out, params));
  if (half) return half;
  const out = output(backend, inputShape, 'float32');
  addon.convBackwardData(backend.ptr(dy), backend.krscFilter(filter, false), out.ptr, params);
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
  const addon = addonOf<ConvAddon>(backend);
  const half = onHalves(backend, tf.Conv2DBackpropFilter, x, dy, false, filterShape, (xp, dyp, out) => addon.convBackwardFilterHalves(xp, dyp, out, params));
  if (half) return half;
  const out = output(backend, filterShape, 'float32');
  addon.convBackwardFilter(backend.ptr(x), backend.ptr(dy), out.ptr, params);
  return out.info;
};

export const CONV_KERNELS: KernelTable = {
  [tf.Conv2D]: conv2D,
  [tf.FusedConv2D]: fusedConv2D,
  [tf.Conv2DBackpropInput]: conv2DBackpropInput,
  [tf.Conv2DBackpropFilter]: conv2DBackpropFilter,
};
