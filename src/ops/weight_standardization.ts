/**
 * Weight standardisation (BiT): each output channel of an HWIO kernel (the last axis) is normalised
 * over (kh, kw, in) to zero mean and unit biased variance: (w - mean) / sqrt(var + eps). BiT uses
 * eps 1e-10 (timm 1e-8).
 *
 * On the kernel viewed as a [kh*kw*in, out] matrix this is exactly training-mode batch normalisation
 * without affine parameters (statistics per column over all rows), so it runs through batchNormTrain:
 * the native kernels on onednn, the composed op with its closed-form gradient elsewhere. Composing it
 * from moments/sub/div instead left most of a BiT training step in per-element JavaScript kernels.
 */
import { tf } from '../engine/tf.js';
import { batchNormTrain } from './batch_norm.js';

export function standardizeWeight<T extends tf.Tensor4D>(w: T, eps = 1e-10): T {
  return tf.tidy(() => {
    const [kh, kw, cin, cout] = w.shape;
    const flat = tf.reshape(w, [kh * kw * cin, cout]);
    const { y, mean, variance } = batchNormTrain(flat, tf.ones([cout]), tf.zeros([cout]), eps);
    tf.dispose([mean, variance]);
    return tf.reshape(y, w.shape) as T;
  });
}
