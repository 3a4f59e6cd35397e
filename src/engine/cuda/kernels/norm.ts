/**
 * Normalisation kernels of the CUDA engine: training-mode batch norm and group norm (simtrip's own
 * kernel pairs, src/engine/custom_kernels.ts) and tfjs' FusedBatchNorm (inference with given
 * statistics). All run native/cuda/kernels/group_norm.cu's normalisation over channel groups of a
 * [segments][rows][channels] view: batch norm is one segment with one channel per group, group norm
 * of NHWC one segment per sample; FusedBatchNorm is its element-wise pass (batch_norm.cu).
 *
 * x and dy may be stored as halves (mixed16 activations and gradients): the kernels read them
 * directly, with no float32 copy, and give the float32 path's bits; statistics and outputs are float32
 * (the layers round batch norm's output themselves; group norm runs in float32 under autocast).
 */
import { tf } from '../../tf.js';
import { BATCH_NORM_SPEC, GROUP_NORM_SPEC, gradName, type NormKernelSpec } from '../../custom_kernels.js';
import { gcd, sizeOf } from '../../../util/values.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { float32Input, float32OrHalvesInput } from './custom.js';

interface NormAddon {
  /** storage bit 0: x is stored as halves. */
  groupNormForward(
    x: number, gamma: number, beta: number, y: number, mean: number, variance: number,
    segments: number, rows: number, channels: number, groupSize: number, eps: number, storage: number,
  ): void;
  /** storage bit 0: dy is stored as halves, bit 1: x. */
  groupNormBackward(
    dy: number, x: number, gamma: number, mean: number, variance: number, dx: number, dgamma: number, dbeta: number,
    segments: number, rows: number, channels: number, groupSize: number, eps: number, storage: number,
  ): void;
  /** Each parameter is (pointer, length); a 0 pointer for scale or offset means 1 or 0. */
  batchNormInference(
    x: number, y: number, size: number, channels: number, mean: number, meanLength: number, variance: number, varianceLength: number,
    scale: number, scaleLength: number, offset: number, offsetLength: number, eps: number, xHalf: boolean,
  ): void;
}

/** [segments, rows, channels, groupSize] of the native view, from a kernel spec's params. */
type View = [number, number, number, number];

interface NormKernelPair {
  spec: NormKernelSpec;
  view(params: Int32Array): View;
}

const BATCH_NORM: NormKernelPair = { spec: BATCH_NORM_SPEC, view: ([rows, channels]) => [1, rows!, channels!, 1] };
const GROUP_NORM: NormKernelPair = { spec: GROUP_NORM_SPEC, view: ([n, hw, c, g]) => [n!, hw!, c!, c! / g!] };

function forwardKernel({ spec, view }: NormKernelPair): CudaKernel {
  return ({ inputs, attrs }, backend) => {
    const { x, gamma, beta } = inputs as Record<'x' | 'gamma' | 'beta', tf.TensorInfo>;
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const [segments, rows, channels, groupSize] = view(params);
    const stats = spec.statCount(params);
    const xs = float32OrHalvesInput(backend, x, spec.name, 'x', sizeOf(x.shape));
    const gp = float32Input(backend, gamma, spec.name, 'gamma', channels);
    const bp = float32Input(backend, beta, spec.name, 'beta', channels);
    const y = output(backend, [...x.shape], 'float32');
    const mean = output(backend, [stats], 'float32');
    const variance = output(backend, [stats], 'float32');
    const { eps } = attrs as { eps: number };
    const storage = xs.half ? 1 : 0;
    addonOf<NormAddon>(backend).groupNormForward(xs.ptr, gp, bp, y.ptr, mean.ptr, variance.ptr, segments, rows, channels, groupSize, eps, storage);
    return [y.info, mean.info, variance.info];
  };
}

function backwardKernel({ spec, view }: NormKernelPair): CudaKernel {
  const name = gradName(spec);
  return ({ inputs, attrs }, backend) => {
    const { dy, x, gamma, mean, variance } = inputs as Record<'dy' | 'x' | 'gamma' | 'mean' | 'variance', tf.TensorInfo>;
    const params = spec.params(x.shape, attrs as Record<string, unknown>);
    const [segments, rows, channels, groupSize] = view(params);
    const stats = spec.statCount(params);
    const size = sizeOf(x.shape);
    const dys = float32OrHalvesInput(backend, dy, name, 'dy', size);
    const xs = float32OrHalvesInput(backend, x, name, 'x', size);
    const ptrs = [
      dys.ptr,
      xs.ptr,
      float32Input(backend, gamma, name, 'gamma', channels),
      float32Input(backend, mean, name, 'mean', stats),
      float32Input(backend, variance, name, 'variance', stats),
    ] as const;
    const dx = output(backend, [...x.shape], 'float32');
    const dgamma = output(backend, [...gamma.shape], 'float32');
    const dbeta = output(backend, [...gamma.shape], 'float32');
    const { eps } = attrs as { eps: number };
    const storage = (dys.half ? 1 : 0) | (xs.half ? 2 : 0);
    addonOf<NormAddon>(backend).groupNormBackward(...ptrs, dx.ptr, dgamma.ptr, dbeta.ptr, segments, rows, channels, groupSize, eps, storage);
    return [dx.info, dgamma.info, dbeta.info];
  };
}


/**
 * tfjs' inference batch norm: out[i] = offset + (x[i] - mean) * scale / sqrt(variance + eps), each
 * parameter read at i % its length. With `channels` the least common multiple of the lengths, every
 * parameter is constant down the columns of x viewed as [size / channels, channels]; a size that
 * does not split that way (never seen from tf.batchNorm) takes the host fallback.
 */
const fusedBatchNorm: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x, mean, variance, scale, offset } = inputs as Record<'x' | 'mean' | 'variance', tf.TensorInfo> &
    Partial<Record<'scale' | 'offset', tf.TensorInfo | null>>;
  const params = [mean, variance, scale ?? null, offset ?? null];
  if (x.dtype !== 'float32' || params.some((t) => t && t.dtype !== 'float32')) return null;
  const lengths = params.map((t) => (t ? sizeOf(t.shape) : 1));
  if (lengths.some((n) => n === 0)) return null;
  const channels = lengths.reduce((a, b) => (a / gcd(a, b)) * b, 1);
  const size = sizeOf(x.shape);
  if (size % channels !== 0) return null;
  const out = output(backend, [...x.shape], 'float32');
  if (size === 0) return out.info;
  const ptr = (t: tf.TensorInfo | null) => (t ? backend.ptr(t) : 0);
  const eps = (attrs as unknown as tf.FusedBatchNormAttrs).varianceEpsilon ?? 0.001;
  addonOf<NormAddon>(backend).batchNormInference(
    backend.storagePtr(x), out.ptr, size, channels,
    ptr(mean), lengths[0]!, ptr(variance), lengths[1]!, ptr(scale ?? null), lengths[2]!, ptr(offset ?? null), lengths[3]!,
    eps, backend.isHalf(x),
  );
  return out.info;
};

export const NORM_KERNELS: KernelTable = {
  [BATCH_NORM.spec.name]: forwardKernel(BATCH_NORM),
  [gradName(BATCH_NORM.spec)]: backwardKernel(BATCH_NORM),
  [GROUP_NORM.spec.name]: forwardKernel(GROUP_NORM),
  [gradName(GROUP_NORM.spec)]: backwardKernel(GROUP_NORM),
  [tf.FusedBatchNorm]: fusedBatchNorm,
};
