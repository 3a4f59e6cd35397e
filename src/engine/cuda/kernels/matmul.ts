/**
 * BatchMatMul and _FusedMatMul: native/cuda/matmul.cu, one strided-batched GEMM (cuBLAS on the GPU)
 * plus the bias/relu epilogue. float32 only; batch broadcasts that flatten to one stride per side
 * (equal batches, or one side with a single matrix) run natively, others on the host.
 */
import { tf } from '../../tf.js';
import { matmulShape } from '../../matmul_shape.js';
import type { CudaBackend } from '../backend.js';
import { addonOf, type CudaKernel, type KernelTable, output } from './common.js';
import { epilogueBiasLength } from './conv.js';

interface MatmulAddon {
  /** params: the P enum of native/cuda/matmul.cu; biasLength: n, or 1 for one value everywhere. */
  batchMatMul(a: number, b: number, bias: number, biasLength: number, out: number, params: Int32Array): void;
}

function run(
  backend: CudaBackend,
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
  addonOf<MatmulAddon>(backend).batchMatMul(backend.ptr(a), backend.ptr(b), bias, biasLength, out.ptr, params);
  return out.info;
}

const batchMatMul: CudaKernel = ({ inputs, attrs }, backend) => {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  return run(backend, a, b, !!transposeA, !!transposeB, { relu: false });
};

const fusedMatMul: CudaKernel = ({ inputs, attrs }, backend) => {
  const { a, b, bias } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo; bias?: tf.TensorInfo };
  const { transposeA, transposeB, activation } = attrs as unknown as tf._FusedMatMulAttrs;
  // prelu, leakyrelu, elu, sigmoid and relu6 do not occur in simtrip's heads; the host keeps them exact.
  if (activation !== undefined && activation !== 'linear' && activation !== 'relu') return null;
  return run(backend, a, b, !!transposeA, !!transposeB, { bias, relu: activation === 'relu' });
};

export const MATMUL_KERNELS: KernelTable = {
  [tf.BatchMatMul]: batchMatMul,
  [tf._FusedMatMul]: fusedMatMul,
};
