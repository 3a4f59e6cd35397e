/**
 * Training-mode batch normalisation as one differentiable op. tf.moments + tf.batchNorm and their
 * registered gradients reduce over the outer axes of NHWC tensors, which the cpu backend does by
 * transposing and broadcasting element by element: most of a training step went there. This op runs
 * two native kernels where the backend has them (onednn) and, everywhere else, a composition of
 * standard ops on the [rows, channels] view with the closed-form backward.
 */
import { tf } from '../engine/tf.js';
import { BATCH_NORM_RELU_TRAIN, BATCH_NORM_TRAIN, type BatchNormTrainAttrs, canRunKernel } from '../engine/custom_kernels.js';

export interface BatchNormTrainResult<T extends tf.Tensor> {
  y: T;
  /** Batch mean per channel (over every axis but the last). */
  mean: tf.Tensor1D;
  /** Biased batch variance per channel. No gradient flows back through mean or variance. */
  variance: tf.Tensor1D;
}

/**
 * y = gamma * (x - mean) / sqrt(variance + eps) + beta with the statistics of this batch, for x of
 * rank >= 2 with channels last ([N, C], NHWC, ...). gamma and beta hold one value per channel.
 */
export function batchNormTrain<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): BatchNormTrainResult<T> {
  if (x.rank < 2) throw new Error(`batchNormTrain: expected rank >= 2 with channels last, got shape [${x.shape.join(',')}]`);
  const channels = x.shape[x.rank - 1]!;
  for (const [name, t] of [['gamma', gamma], ['beta', beta]] as const) {
    if (t.size !== channels) throw new Error(`batchNormTrain: ${name} has ${t.size} elements, x has ${channels} channels`);
  }
  const [y, mean, variance] = tf.tidy(() => {
    const g = gamma.rank === 1 ? gamma : tf.reshape(gamma, [channels]);
    const b = beta.rank === 1 ? beta : tf.reshape(beta, [channels]);
    const out = canRunKernel(BATCH_NORM_TRAIN, x, g, b) ? nativeBatchNorm(x, g, b, eps) : composedBatchNorm(x, g, b, eps);
    return [out.y, out.mean, out.variance];
  });
  return { y: y as T, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}

/** Whether batchNormReluTrain runs as one fused kernel on the active backend (else it composes two ops). */
export function batchNormReluFuses(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): boolean {
  return canRunKernel(BATCH_NORM_RELU_TRAIN, x, gamma, beta);
}

/**
 * relu(batchNormTrain(x).y) with the batch statistics: one native kernel each way where the backend
 * has it (onednn: the ReLU costs no pass of its own, forward or backward), else the two ops.
 */
export function batchNormReluTrain<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps = 1e-5): BatchNormTrainResult<T> {
  const channels = x.shape[x.rank - 1]!;
  if (x.rank < 2 || gamma.size !== channels || beta.size !== channels || !batchNormReluFuses(x, gamma, beta)) {
    const r = batchNormTrain(x, gamma, beta, eps);
    const y = tf.relu(r.y) as T;
    r.y.dispose();
    return { ...r, y };
  }
  const [y, mean, variance] = tf.tidy(() => {
    const out = nativeBatchNorm(x, gamma.rank === 1 ? gamma : tf.reshape(gamma, [channels]), beta.rank === 1 ? beta : tf.reshape(beta, [channels]), eps, BATCH_NORM_RELU_TRAIN);
    return [out.y, out.mean, out.variance];
  });
  return { y: y as T, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}

function nativeBatchNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number, kernel = BATCH_NORM_TRAIN): BatchNormTrainResult<T> {
  const attrs: BatchNormTrainAttrs = { eps };
  const [y, mean, variance] = tf.engine().runKernel(kernel, { x, gamma, beta }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y: y as T, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}

/**
 * The fallback for backends without the native kernels (cpu, wasm, tfjs-node). Seven full-size passes
 * each way; the backward reuses the normalised input saved by the forward instead of recomputing it.
 *
 * tf.customGrad's value must be a single tensor, so the statistics leave the forward function as kept
 * tensors and are re-tracked in the caller's scope by a clone (which shares storage). They are not
 * outputs of the taped node, so no gradient can reach x through them.
 */
function composedBatchNorm<T extends tf.Tensor>(x: T, gamma: tf.Tensor, beta: tf.Tensor, eps: number): BatchNormTrainResult<T> {
  const channels = x.shape[x.rank - 1]!;
  const rows = x.size / channels;
  let stats: [tf.Tensor1D, tf.Tensor1D] | null = null;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [xIn, g, b] = args as [tf.Tensor, tf.Tensor1D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    const x2 = tf.reshape(xIn, [rows, channels]);
    const mean = tf.mean(x2, 0) as tf.Tensor1D;
    const centred = tf.sub(x2, mean);
    const variance = tf.mean(tf.square(centred), 0) as tf.Tensor1D;
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(centred, rstd);
    const y = tf.reshape(tf.add(tf.mul(xhat, g), b), xIn.shape);
    save([xhat, rstd, g]);
    stats = [tf.keep(mean), tf.keep(variance)];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, r, gs] = saved as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D];
        const dy2 = tf.reshape(dy, [rows, channels]);
        const dbeta = tf.sum(dy2, 0);
        const dgamma = tf.sum(tf.mul(dy2, xh), 0);
        // dx = a*(dy - mean(dy) - xhat*mean(dy*xhat)) with a = gamma*rstd, folded into per-channel
        // factors so only two full-size products and two full-size sums remain.
        const a = tf.mul(gs, r);
        const offset = tf.mul(a, tf.div(dbeta, rows));
        const slope = tf.mul(a, tf.div(dgamma, rows));
        const dx = tf.sub(tf.mul(dy2, a), tf.add(tf.mul(xh, slope), offset));
        return [tf.reshape(dx, xIn.shape), dgamma, dbeta];
      },
    };
  });
  let y: T;
  try {
    y = op(x, gamma, beta) as T;
  } catch (e) {
    if (stats) tf.dispose(stats);
    throw e;
  }
  const [keptMean, keptVariance] = stats as unknown as [tf.Tensor1D, tf.Tensor1D];
  const mean = tf.clone(keptMean);
  const variance = tf.clone(keptVariance);
  tf.dispose([keptMean, keptVariance]);
  return { y, mean, variance };
}
