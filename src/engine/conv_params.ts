/**
 * Translates tfjs' Conv2DInfo into the Int32Array the native convolutions take (layout: the P enum in
 * native/onednn/conv.cc and native/cuda/conv.cu). tfjs and oneDNN describe padding differently: tfjs fixes the output size and pads,
 * oneDNN derives the output size from the pads with floor division. Where they disagree (a 'ceil'
 * rounding mode, or stride leaving the last rows unused) the end padding is recomputed so both agree;
 * the extra padded rows only ever meet zeros, which is what tfjs' cpu kernels compute too.
 */
import { tf } from './tf.js';

type Conv2DInfo = tf.backend_util.Conv2DInfo;

/** The end padding that makes oneDNN produce `outSize`, or null when no non-negative one does. */
export function endPadding(inSize: number, effectiveK: number, stride: number, start: number, end: number, outSize: number): number | null {
  const fits = (e: number) => {
    const span = inSize + start + e - effectiveK;
    return span >= 0 && Math.floor(span / stride) + 1 === outSize;
  };
  if (fits(end)) return end;
  const exact = (outSize - 1) * stride + effectiveK - inSize - start;
  return exact >= 0 && fits(exact) ? exact : null;
}

export function convParams(info: Conv2DInfo, opts: { relu: boolean; bias: boolean }): Int32Array | null {
  if (info.dataFormat !== 'channelsLast') return null;
  const sizes = [info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels, info.filterHeight, info.filterWidth];
  if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) return null;
  const steps = [info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth];
  if (steps.some((s) => !Number.isInteger(s) || s < 1)) return null;
  const { top, left, bottom, right } = info.padInfo;
  if ([top, left, bottom, right].some((p) => !Number.isInteger(p) || p < 0)) return null;
  const padBottom = endPadding(info.inHeight, info.effectiveFilterHeight, info.strideHeight, top, bottom, info.outHeight);
  const padRight = endPadding(info.inWidth, info.effectiveFilterWidth, info.strideWidth, left, right, info.outWidth);
  if (padBottom === null || padRight === null) return null;
  return Int32Array.from([
    ...sizes,
    ...steps,
    top,
    left,
    padBottom,
    padRight,
    opts.relu ? 1 : 0,
    opts.bias ? 1 : 0,
  ]);
}
