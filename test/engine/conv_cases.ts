/**
 * Convolution cases for the engines' tests: the case type and the tfjs call every engine is checked with
 * (onednn.test.ts, cuda/conv.test.ts), and the shapes the CUDA engine runs (cuda/conv.test.ts on float32,
 * cuda/half_tensor_cores.test.ts on halves).
 */
import { tf } from '../../src/engine/tf.js';

export type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

export interface ConvCase {
  name: string;
  x: number[];
  f: number[];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number | [number, number];
  rounding?: 'floor' | 'round' | 'ceil';
}

// ResNet-18 at width 8 on 16 px crops with batch 6 (the CIFAR stem, a block's 3x3 convolutions, the
// downsampling 3x3/2 and 1x1/2 shortcut), the ImageNet/BiT 7x7/2 stems, and the padding corner cases.
export const CONV_CASES: ConvCase[] = [
  { name: 'CIFAR stem 3x3/1 same, 3 -> 8, batch 6', x: [6, 16, 16, 3], f: [3, 3, 3, 8], strides: 1, pad: 'same' },
  { name: 'block 3x3/1 pad 1, 8 -> 8, batch 6', x: [6, 8, 8, 8], f: [3, 3, 8, 8], strides: 1, pad: 1 },
  { name: 'downsampling 3x3/2 pad 1, 8 -> 16', x: [6, 8, 8, 8], f: [3, 3, 8, 16], strides: 2, pad: 1 },
  { name: 'shortcut 1x1/2 valid, 8 -> 16', x: [6, 8, 8, 8], f: [1, 1, 8, 16], strides: 2, pad: 'valid' },
  { name: 'ImageNet stem 7x7/2 pad 3, batch 1', x: [1, 16, 16, 3], f: [7, 7, 3, 8], strides: 2, pad: 3 },
  { name: 'BiT root 7x7/2 valid on a padded input', x: [2, 21, 21, 3], f: [7, 7, 3, 4], strides: 2, pad: 'valid' },
  { name: "3x3/2 'same' on an even input (bottom/right pad only)", x: [2, 8, 8, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { name: "3x3 strides [2,1] 'same' (asymmetric along H only)", x: [2, 8, 7, 3], f: [3, 3, 3, 4], strides: [2, 1], pad: 'same' },
  { name: 'explicit asymmetric pad', x: [1, 10, 9, 2], f: [3, 3, 2, 3], strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '3x3/2 valid, last row unused', x: [1, 8, 8, 4], f: [3, 3, 4, 6], strides: 2, pad: 'valid' },
  { name: '3x2 window, stride 2 pad 1, odd sizes', x: [2, 7, 11, 3], f: [3, 2, 3, 4], strides: 2, pad: 1 },
  { name: 'numeric pad with ceil rounding', x: [1, 8, 8, 2], f: [3, 3, 2, 3], strides: 2, pad: 1, rounding: 'ceil' },
  { name: 'dilation 2 same', x: [1, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same', dilations: 2 },
  { name: 'dilation [2,3] valid, batch 2', x: [2, 11, 12, 2], f: [3, 2, 2, 5], strides: 1, pad: 'valid', dilations: [2, 3] },
];

/** The cases tfjs' conv2d gradient takes: it supports neither dilation nor dimRoundingMode. */
export const CONV_GRADIENT_CASES = CONV_CASES.filter((k) => k.dilations === undefined && k.rounding === undefined);

export function conv(c: ConvCase, x: tf.Tensor, f: tf.Tensor): tf.Tensor4D {
  return tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1, c.rounding);
}
