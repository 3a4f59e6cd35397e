/**
 * BatchMatMul and _FusedMatMul: native/cuda/matmul.cu, one strided-batched GEMM (cuBLAS on the GPU)
 * plus the bias/relu epilogue. float32 only; batch broadcasts that flatten to one stride per side
 * (equal batches, or one side with a single matrix) run natively, others on the host.
 *
 * Half storage (mixed16): when a and b are both stored as halves, the GEMM reads them directly (fp16
 * tensor cores on the GPU, float32 accumulation; counted as '<kernel>/half'). The output stays
 * float32, the float32 sum itself, as the emulation's: Linear (src/model/layers.ts) adds its bias to
 * the float32 product and rounds only after, and the backward products are rounded by roundToHalf's
 * gradient wherever they reach one. So the half path equals the float32 path on the same values up to
 * the summation order.
 */
import { tf } from '../../tf.js';
import { matmulShape } from '../../matmul_shape.js';
import type { CudaBackend } from '../backend.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { countNative } from '../../kernel_stats.js';
import { epilogueBiasLength, HALF_RUN } from './conv.js';

interface MatmulAddon {
  /** params: the P enum of native/cuda/matmul.cu; biasLength: n, or 1 for one value everywhere. */
  batchMatMul(a: number, b: number, bias: number, biasLength: number, out: number, params: Int32Array): void;
  /** The same with a and b IEEE halves; bias and out float32. */
  batchMatMulHalves(a: number, b: number, bias: number, biasLength: number, out: number, params: Int32Array): void;
}

function run(
  backend: CudaBackend,
  kernelName: string,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  epilogue: { bias?: tf.TensorInfo; relu: boolean },
): tf.TensorInfo | null {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') return null;
  const shape = matmulShape(a.shape, b.shape, transposeA, transposeB);
  if (!shape) return null;
  const biasLength = epilogue.bias ? epilogueBiasLength(epilogue.bias, shape.n, shape.outShape.length) : 0;
  if (biasLength === null) return null;
  const params = Int32Array.from([shape.batchA, shape.batchB, shape.m, shape.n, shape.k, transposeA ? 1 : 0, transposeB ? 1 : 0, epilogue.relu ? 1 : 0, biasLength > 0 ? 1 : 0]);
  const out = output(backend, shape.outShape, 'float32');
  const bias = epilogue.bias ? backend.ptr(epilogue.bias) : 0;
  const addon = addonOf<MatmulAddon>(backend);
  if (backend.isHalf(a) && backend.isHalf(b)) {
    addon.batchMatMulHalves(backend.storagePtr(a), backend.storagePtr(b), bias, biasLength, out.ptr, params);
    countNative(kernelName + HALF_RUN);
  } else {
    addon.batchMatMul(backend.ptr(a), backend.ptr(b), bias, biasLength, out.ptr, params);
  }
  return out.info;
}

const batchMatMul: CudaKernel = ({ inputs, attrs }, backend) => {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  return run(backend, tf.BatchMatMul, a, b, !!transposeA, !!transposeB, { relu: false });
};

const fusedMatMul: CudaKernel = ({ inputs, attrs }, backend) => {
  const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
  const { transposeA, transposeB, activation } = attrs as unknown as tf._FusedMatMulAttrs;
  // prelu, leakyrelu, elu, sigmoid and relu6 do not occur in simtrip's heads; the host keeps them exact.
  if (activation !== undefined && activation !== 'linear' && activation !== 'relu') return null;
  return run(backend, tf._FusedMatMul, a, b, !!transposeA, !!transposeB, { bias, relu: activation === 'relu' });
};

export const MATMUL_KERNELS: KernelTable = {
  [tf.BatchMatMul]: batchMatMul,
  [tf._FusedMatMul]: fusedMatMul,
};
