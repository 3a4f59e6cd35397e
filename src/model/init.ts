/**
 * Seeded weight initialisers matching PyTorch's defaults, computed in JS so a seed gives the same
 * model on every engine.
 */
import { tf } from '../engine/tf.js';
import { Rng } from '../util/rng.js';

/** Kaiming normal, fan_out, ReLU gain: torchvision's ResNet conv init. Shape is HWIO. */
export function kaimingNormalConv(shape: [number, number, number, number], rng: Rng): tf.Tensor {
  const [kh, kw, , cout] = shape;
  const std = Math.sqrt(2 / (cout * kh * kw));
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
  return tf.tensor(data, shape);
}

/** nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias. */
export function linearUniform(shape: number[], fanIn: number, rng: Rng): tf.Tensor {
  const bound = 1 / Math.sqrt(fanIn);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.uniform(-bound, bound);
  return tf.tensor(data, shape);
}
