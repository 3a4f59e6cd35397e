/**
 * GroupNorm over NHWC tensors (BiT ResNet-v2): per sample, the C channels are split into `groups`
 * contiguous groups and each group is normalised over (H, W, C/G) with the biased variance, then the
 * per-channel affine gamma/beta is applied.
 *
 * Two paths with the same result: native kernels where the backend has them (onednn; the composed
 * version's 5-D reductions run element by element in JavaScript and dominated BiT training steps), and
 * a composition of standard ops, differentiated by tfjs autodiff, everywhere else (cpu, wasm, tfjs-node).
 */
import { tf } from '../engine/tf.js';
import { canRunKernel, GROUP_NORM, type GroupNormAttrs } from '../engine/custom_kernels.js';

export function groupNorm<T extends tf.Tensor4D>(x: T, gamma: tf.Tensor, beta: tf.Tensor, groups = 32, eps = 1e-5): T {
  const c = x.shape[3];
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels do not split into ${groups} groups`);
  return canRunKernel(GROUP_NORM, x, gamma, beta) ? nativeGroupNorm(x, gamma, beta, groups, eps) : composedGroupNorm(x, gamma, beta, groups, eps);
}

function nativeGroupNorm<T extends tf.Tensor4D>(x: T, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number): T {
  const attrs: GroupNormAttrs = { eps, groups };
  const [y, mean, variance] = tf.engine().runKernel(GROUP_NORM, { x, gamma, beta }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  tf.dispose([mean!, variance!]);
  return y as T;
}

/** The fallback for backends without the native kernels. */
export function composedGroupNorm<T extends tf.Tensor4D>(x: T, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number): T {
  const [n, h, w, c] = x.shape;
  return tf.tidy(() => {
    const grouped = tf.reshape(x, [n, h, w, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
    const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normed, [n, h, w, c]), gamma), beta) as T;
  });
}
