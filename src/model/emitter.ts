/**
 * A model's inference computation, described op by op to a graph builder (the ONNX exporter,
 * src/export/onnx_encoder.ts). Each layer describes itself next to the code that applies it
 * (`emit` beside `apply`), so the network's structure is written once.
 *
 * Values are named by strings and laid out as PyTorch lays them out: activations NCHW, conv kernels
 * OIHW. Everything is inference mode (BatchNorm on its running statistics) and float32.
 */
import { tf } from '../engine/tf.js';
import { permuteArray } from '../util/permute.js';

export interface ConvSpec {
  /** The layer's parameter-name stem ("backbone.layer1.0.conv1"), for naming nodes and weights. */
  readonly name: string;
  /** OIHW kernel. */
  readonly weight: Float32Array;
  readonly shape: readonly [number, number, number, number];
  readonly stride: number;
  /** Zero padding on every side. */
  readonly pad: number;
  readonly bias?: Float32Array;
}

export interface NormSpec {
  readonly name: string;
  readonly scale: Float32Array;
  readonly bias: Float32Array;
  readonly eps: number;
}

export interface BatchNormSpec extends NormSpec {
  readonly mean: Float32Array;
  readonly variance: Float32Array;
}

export interface GroupNormSpec extends NormSpec {
  readonly groups: number;
}

export interface InferenceEmitter {
  conv(x: string, spec: ConvSpec): string;
  batchNorm(x: string, spec: BatchNormSpec): string;
  groupNorm(x: string, spec: GroupNormSpec): string;
  relu(x: string): string;
  add(a: string, b: string): string;
  /** Max-pool with -inf padding (padded positions never win), as PyTorch's MaxPool2d. */
  maxPool(x: string, kernel: number, stride: number, pad: number): string;
  /**
   * Max-pool of the input zero-padded by `pad` on each spatial side (BiT's root: a zero pad, then an
   * unpadded max-pool), where a window reaching into the padding also sees 0.
   */
  zeroPaddedMaxPool(x: string, kernel: number, stride: number, pad: number): string;
  /** Global average pool over H and W: [N, C, H, W] -> [N, C]. */
  globalAvgPool(x: string): string;
}

/** A variable's values in PyTorch layout (`perm` from toTorchPerm, or null for as-is). */
export function torchValues(t: tf.Tensor, perm: number[] | null): Float32Array {
  const values = t.dataSync() as Float32Array;
  return perm ? permuteArray(values, t.shape, perm) : values.slice();
}
