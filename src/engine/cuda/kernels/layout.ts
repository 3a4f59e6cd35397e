/**
 * Layout kernels: permutations and other copies between shapes. All end in the strided copy or the
 * tiled matrix transpose of native/cuda/kernels/transpose.cu.
 */
import { tf } from '../../tf.js';
import { type CudaKernel, type KernelTable, output } from './common.js';
import { asMatrixTranspose, copyStrided, rowMajorStrides, transposeMatrices } from './strided.js';

const transpose: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { perm } = attrs as unknown as tf.TransposeAttrs;
  const outShape = perm.map((p) => x.shape[p]!);
  const out = output(backend, outShape, x.dtype);
  const matrix = x.dtype === 'complex64' ? null : asMatrixTranspose(x.shape, perm);
  if (matrix && matrix[0] <= 65535) {
    transposeMatrices(backend, backend.ptr(x), out.ptr, ...matrix);
    return out.info;
  }
  const inStrides = rowMajorStrides(x.shape);
  if (!copyStrided(backend, x.dtype, backend.ptr(x), out.ptr, outShape, perm.map((p) => inStrides[p]!))) {
    backend.disposeIntermediateTensorInfo(out.info);
    return null;
  }
  return out.info;
};

export const LAYOUT_KERNELS: KernelTable = {
  [tf.Transpose]: transpose,
};
