/**
 * Kernels that only relabel a tensor: Reshape and Identity share the input's device memory (one more
 * reference, as the cpu backend does), so a view costs nothing on the GPU.
 */
import { tf } from '../../tf.js';
import { alias, type CudaKernel, type KernelTable } from './common.js';

const reshape: CudaKernel = ({ inputs, attrs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  const { shape } = attrs as unknown as tf.ReshapeAttrs;
  const size = tf.util.sizeFromShape(x.shape);
  const outShape = tf.util.inferFromImplicitShape([...shape], size);
  if (tf.util.sizeFromShape(outShape) !== size) {
    throw new Error(`Reshape: the new shape (${outShape}) has ${tf.util.sizeFromShape(outShape)} elements, the old shape (${x.shape}) ${size}`);
  }
  return alias(backend, x, outShape);
};

const identity: CudaKernel = ({ inputs }, backend) => {
  const { x } = inputs as { x: tf.TensorInfo };
  return alias(backend, x);
};

export const SHAPE_KERNELS: KernelTable = {
  [tf.Reshape]: reshape,
  [tf.Identity]: identity,
};
