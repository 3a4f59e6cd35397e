/**
 * ReLU's gradient as one kernel where an engine has it. tfjs registers Relu's gradient as
 * dy * cast(step(x)): two full-size passes and an intermediate tensor the size of the activation, for
 * every ReLU of every training step (a ResNet-18 SimSiam step spends about 4 % of its kernel time in
 * Step alone). registerReluGradient replaces that gradient with one that runs RELU_GRAD, dy * step(x)
 * in a single pass, where the active backend registered it (onednn), and tfjs' own composition
 * everywhere else: same values either way, NaN and infinities included.
 */
import { tf } from '../engine/tf.js';
import { canRunKernel } from '../engine/custom_kernels.js';

/** Inputs dy and x of one shape (float32); output dy * step(x), with step(NaN) = NaN as tf.step has it. */
export const RELU_GRAD = 'SimtripReluGrad';

/** tfjs-core's own Relu gradient, the path for backends without RELU_GRAD. */
export function composedReluGrad(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(dy, tf.cast(tf.step(x), 'float32')));
}

export function reluGrad(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  if (canRunKernel(RELU_GRAD, dy, x) && tf.util.arraysEqual(dy.shape, x.shape)) {
    return tf.engine().runKernel(RELU_GRAD, { dy, x }) as tf.Tensor;
  }
  return composedReluGrad(dy, x);
}

let registered = false;

/** Global in tfjs (gradients are not per backend); the engine that registers RELU_GRAD calls it once. */
export function registerReluGradient(): void {
  if (registered) return;
  registered = true;
  tf.registerGradient({
    kernelName: tf.Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor];
      return { x: () => reluGrad(dy as tf.Tensor, x) };
    },
  });
}
