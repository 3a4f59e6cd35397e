/**
 * Weight standardisation (BiT): each output channel of an HWIO kernel (the last axis) is normalised
 * over (kh, kw, in) to zero mean and unit biased variance: (w - mean) / sqrt(var + eps). BiT uses
 * eps 1e-10 (timm 1e-8). Built from standard tfjs ops, so gradients flow back to the raw kernel.
 */
import { tf } from '../engine/tf.js';

export function standardizeWeight<T extends tf.Tensor4D>(w: T, eps = 1e-10): T {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(w, [0, 1, 2], true);
    return tf.div(tf.sub(w, mean), tf.sqrt(tf.add(variance, eps))) as T;
  });
}
