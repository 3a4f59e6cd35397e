/** The SimSiam family's losses: short pure functions of tensors. */
import { tf } from '../engine/tf.js';
import { stopGradient } from './stop_gradient.js';

/** torch.nn.CosineSimilarity's eps: the norm product is clamped from below. */
const COS_EPS = 1e-8;

/** Row-wise cosine similarity of two [N, D] tensors. */
export function cosineSimilarity(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  const dot = tf.sum(tf.mul(a, b), 1);
  const norms = tf.mul(tf.norm(a, 'euclidean', 1), tf.norm(b, 'euclidean', 1));
  return tf.div(dot, tf.maximum(norms, COS_EPS)) as tf.Tensor1D;
}

/** D(p, z) = -cos(p, stopgrad(z)), averaged over the batch. */
export function negativeCosine(p: tf.Tensor2D, z: tf.Tensor2D): tf.Scalar {
  return tf.neg(tf.mean(cosineSimilarity(p, stopGradient(z)))) as tf.Scalar;
}

/** SimSiam's symmetric loss: D(p1, z2)/2 + D(p2, z1)/2, in [-1, 1]. */
export function simsiamLoss(p1: tf.Tensor2D, p2: tf.Tensor2D, z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Scalar {
  return tf.add(tf.mul(negativeCosine(p1, z2), 0.5), tf.mul(negativeCosine(p2, z1), 0.5)) as tf.Scalar;
}

/** SimTriplet's loss and its two halves; loss = inter + intra. */
export interface TripletLoss {
  loss: tf.Scalar;
  /** Anchor <-> neighbour: D(p1, z2)/2 + D(p2, z1)/2, in [-1, 1]. */
  inter: tf.Scalar;
  /** Anchor <-> its second view: D(p1, z3)/2 + D(p3, z1)/2, in [-1, 1]. */
  intra: tf.Scalar;
}

/**
 * SimTriplet (SPEC §4): views 1 = anchor, 2 = neighbour, 3 = second anchor view.
 * L = D(p1, z2)/2 + D(p2, z1)/2 + D(p1, z3)/2 + D(p3, z1)/2, in [-2, 2]: two SimSiam losses that share
 * the anchor. The (neighbour, second view) pair is not compared.
 */
export function simtripletLoss(p: readonly [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D], z: readonly [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D]): TripletLoss {
  const inter = simsiamLoss(p[0], p[1], z[0], z[1]);
  const intra = simsiamLoss(p[0], p[2], z[0], z[2]);
  return { loss: tf.add(inter, intra) as tf.Scalar, inter, intra };
}

/** Mean softmax cross-entropy of [N, K] logits against int32 labels in [0, K). */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const k = logits.shape[1];
  const logp = tf.logSoftmax(logits);
  return tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(labels, k), logp), 1))) as tf.Scalar;
}

/** Fraction of rows whose arg-max logit is the label (no gradient). */
export function accuracy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'float32')) as tf.Scalar);
}

/**
 * Collapse monitor: std over the batch of the l2-normalised outputs, averaged over channels.
 * About 1/sqrt(D) for a healthy representation, 0 for a collapsed one (SimSiam, Fig. 2).
 */
export function collapseStd(z: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const zn = tf.div(z, tf.maximum(tf.norm(z, 'euclidean', 1, true), 1e-12));
    const { variance } = tf.moments(zn, 0);
    // torch.std is unbiased.
    const n = z.shape[0];
    return tf.mean(tf.sqrt(tf.mul(variance, n / Math.max(n - 1, 1)))) as tf.Scalar;
  });
}
