/**
 * GroupNorm over NHWC tensors (BiT ResNet-v2): per sample, the C channels are split into `groups`
 * contiguous groups and each group is normalised over (H, W, C/G) with the biased variance, then the
 * per-channel affine gamma/beta is applied. Built from standard tfjs ops, so gradients come from
 * tfjs autodiff.
 */
import { tf } from '../engine/tf.js';

export function groupNorm<T extends tf.Tensor4D>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  groups = 32,
  eps = 1e-5,
): T {
  const [n, h, w, c] = x.shape;
  if (c % groups !== 0) throw new Error(`groupNorm: ${c} channels do not split into ${groups} groups`);
  return tf.tidy(() => {
    const grouped = tf.reshape(x, [n, h, w, groups, c / groups]);
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true);
    const normed = tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(tf.reshape(normed, [n, h, w, c]), gamma), beta) as T;
  });
}
