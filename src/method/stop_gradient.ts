/**
 * tfjs has no public stopGradient op. This identity passes values through and sends back a zero
 * gradient, so nothing upstream of its input is updated through this path.
 */
import { tf } from '../engine/tf.js';

const stop = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
}));

export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stop(x) as T;
}
