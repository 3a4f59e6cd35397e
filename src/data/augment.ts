/**
 * The SimSiam augmentation pipeline (SPEC §1), per view, on uint8 HWC images:
 * RandomResizedCrop → ColorJitter (p) → RandomGrayscale (p) → GaussianBlur (p) → horizontal flip →
 * normalise, written as float32 NHWC.
 *
 * Random draws follow torchvision's algorithms (crop-box sampling, jitter factor ranges and random op
 * order). Unlike torchvision on PIL images, intermediate results are not rounded to uint8: the
 * pipeline runs on float64 scratch buffers in the 0..255 range and only rounds once, to float32.
 *
 * Every view is a pure function of its Rng, so a batch's output does not depend on which other items
 * share the batch (exact resume after a checkpoint).
 */
import type { AugmentConfig } from '../config/schema.js';
import { Rng } from '../util/rng.js';
import type { ImageDataset } from './dataset.js';

export type Normalization = 'imagenet' | 'bit';

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** Per-channel (R, G, B) mean and std of x/255 that a normalisation subtracts and divides by ([-1, 1] is 0.5, 0.5). */
export function normalizationStats(norm: Normalization): { mean: readonly number[]; std: readonly number[] } {
  return norm === 'bit' ? { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] } : { mean: IMAGENET_MEAN, std: IMAGENET_STD };
}
/** ITU-R 601 luma, as PIL's "L" conversion and torchvision's grayscale use. */
const LUMA_R = 0.299;
const LUMA_G = 0.587;
const LUMA_B = 0.114;

/** An axis-aligned crop in source pixels. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * torchvision RandomResizedCrop.get_params: 10 attempts at an area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio`; if none fits, a center crop clamped to the ratio range.
 */
export function sampleCropBox(
  height: number,
  width: number,
  scale: readonly [number, number],
  ratio: readonly [number, number],
  rng: Rng,
): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/** One ColorJitter draw; a null factor means that transform is disabled (its config value is 0). */
export interface JitterParams {
  /** Application order of [brightness, contrast, saturation, hue] = [0, 1, 2, 3]. */
  order: Int32Array;
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

/** torchvision ColorJitter.get_params: factors uniform in [max(0, 1 - v), 1 + v], hue in [-h, h]. */
export function sampleJitter(cfg: AugmentConfig, rng: Rng): JitterParams {
  const order = rng.permutation(4);
  const factor = (v: number): number | null => (v > 0 ? rng.uniform(Math.max(0, 1 - v), 1 + v) : null);
  const brightness = factor(cfg.brightness);
  const contrast = factor(cfg.contrast);
  const saturation = factor(cfg.saturation);
  const hue = cfg.hue > 0 ? rng.uniform(-cfg.hue, cfg.hue) : null;
  return { order, brightness, contrast, saturation, hue };
}

/** The blur probability, resolving 'auto' as the SimSiam recipes do (no blur on CIFAR-sized input). */
export function blurProbability(cfg: AugmentConfig, outSize: number): number {
  if (cfg.blur_prob === 'auto') return outSize >= 64 ? 0.5 : 0;
  return cfg.blur_prob;
}

/** Odd Gaussian kernel about 10% of the image side (23 at 224 px, as in MoCo v2 / SimSiam). */
export function blurKernelSize(outSize: number): number {
  return 2 * Math.max(1, Math.floor(outSize * 0.05)) + 1;
}

// ---------------------------------------------------------------------------------------------------
// Scratch space. JS is single-threaded, so one module-level workspace, grown on demand, serves every
// call without per-image allocations.

/** Separable resampling weights for one axis: output o reads count[o] taps from start[o]. */
class AxisTable {
  start = new Int32Array(0);
  count = new Int32Array(0);
  weights = new Float64Array(0);
  taps = 0;

  /**
   * Triangle (bilinear) filter over source [offset, offset + len) → outLen samples, pixel centres at
   * +0.5. When shrinking, the filter widens with the scale factor (antialiasing, as PIL and
   * torchvision's antialias=True do); when enlarging it is plain bilinear interpolation.
   */
  fill(offset: number, len: number, outLen: number): void {
    const scale = len / outLen;
    const filterScale = Math.max(scale, 1);
    const support = filterScale;
    const taps = Math.ceil(support) * 2 + 1;
    if (this.start.length < outLen) {
      this.start = new Int32Array(outLen);
      this.count = new Int32Array(outLen);
    }
    if (this.weights.length < outLen * taps) this.weights = new Float64Array(outLen * taps);
    this.taps = taps;
    const end = offset + len;
    for (let o = 0; o < outLen; o++) {
      const center = offset + (o + 0.5) * scale;
      const lo = Math.max(offset, Math.floor(center - support + 0.5));
      const hi = Math.min(end, Math.floor(center + support + 0.5));
      let sum = 0;
      const base = o * taps;
      for (let x = lo; x < hi; x++) {
        const t = Math.abs((x + 0.5 - center) / filterScale);
        const wt = t < 1 ? 1 - t : 0;
        this.weights[base + x - lo] = wt;
        sum += wt;
      }
      for (let k = 0; k < hi - lo; k++) this.weights[base + k] = this.weights[base + k]! / sum;
      this.start[o] = lo;
      this.count[o] = hi - lo;
    }
  }
}

class Workspace {
  /** The working image, HWC in 0..255. */
  img = new Float64Array(0);
  /** Intermediate of the separable passes (resample rows, blur). */
  tmp = new Float64Array(0);
  /** One reflect-padded row for the horizontal blur. */
  line = new Float64Array(0);
  readonly xs = new AxisTable();
  readonly ys = new AxisTable();

  reserve(imgLen: number, tmpLen: number): void {
    if (this.img.length < imgLen) this.img = new Float64Array(imgLen);
    if (this.tmp.length < tmpLen) this.tmp = new Float64Array(tmpLen);
  }
}

const ws = new Workspace();

// ---------------------------------------------------------------------------------------------------
// Pipeline stages, in place on ws.img (n x n x 3).

/** Crops `box` out of the uint8 HWC source and resizes it to n x n into ws.img. */
function resampleCrop(src: Uint8Array, srcW: number, box: CropBox, n: number): void {
  ws.reserve(n * n * 3, box.height * n * 3);
  ws.xs.fill(box.left, box.width, n);
  ws.ys.fill(box.top, box.height, n);
  const { img, tmp, xs, ys } = ws;
  // Horizontal pass: every crop row → n columns.
  for (let r = 0; r < box.height; r++) {
    const srcRow = (box.top + r) * srcW * 3;
    const dstRow = r * n * 3;
    for (let o = 0; o < n; o++) {
      const base = o * xs.taps;
      let p = srcRow + xs.start[o]! * 3;
      let a = 0;
      let b = 0;
      let c = 0;
      for (let k = 0, cnt = xs.count[o]!; k < cnt; k++, p += 3) {
        const wt = xs.weights[base + k]!;
        a += src[p]! * wt;
        b += src[p + 1]! * wt;
        c += src[p + 2]! * wt;
      }
      const q = dstRow + o * 3;
      tmp[q] = a;
      tmp[q + 1] = b;
      tmp[q + 2] = c;
    }
  }
  // Vertical pass: crop rows → n rows.
  const rowLen = n * 3;
  for (let o = 0; o < n; o++) {
    const base = o * ys.taps;
    const first = (ys.start[o]! - box.top) * rowLen;
    const cnt = ys.count[o]!;
    const dst = o * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0, p = first + i; k < cnt; k++, p += rowLen) acc += tmp[p]! * ys.weights[base + k]!;
      img[dst + i] = acc;
    }
  }
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

function adjustBrightness(img: Float64Array, len: number, f: number): void {
  for (let i = 0; i < len; i++) img[i] = clamp255(img[i]! * f);
}

/** Blends towards the mean luma of the whole image (torchvision adjust_contrast). */
function adjustContrast(img: Float64Array, len: number, f: number): void {
  let sum = 0;
  for (let i = 0; i < len; i += 3) sum += LUMA_R * img[i]! + LUMA_G * img[i + 1]! + LUMA_B * img[i + 2]!;
  const offset = (1 - f) * (sum / (len / 3));
  for (let i = 0; i < len; i++) img[i] = clamp255(f * img[i]! + offset);
}

/** Blends each pixel towards its own luma (torchvision adjust_saturation). */
function adjustSaturation(img: Float64Array, len: number, f: number): void {
  for (let i = 0; i < len; i += 3) {
    const g = (1 - f) * (LUMA_R * img[i]! + LUMA_G * img[i + 1]! + LUMA_B * img[i + 2]!);
    img[i] = clamp255(f * img[i]! + g);
    img[i + 1] = clamp255(f * img[i + 1]! + g);
    img[i + 2] = clamp255(f * img[i + 2]! + g);
  }
}

/** Rotates the hue by `shift` turns through HSV, keeping saturation and value (adjust_hue). */
function adjustHue(img: Float64Array, len: number, shift: number): void {
  for (let i = 0; i < len; i += 3) {
    const r = img[i]!;
    const g = img[i + 1]!;
    const b = img[i + 2]!;
    const max = r > g ? (r > b ? r : b) : g > b ? g : b;
    const min = r < g ? (r < b ? r : b) : g < b ? g : b;
    const chroma = max - min;
    if (chroma === 0) continue; // grey: hue undefined, nothing to rotate
    let h: number;
    if (max === r) h = (g - b) / chroma;
    else if (max === g) h = 2 + (b - r) / chroma;
    else h = 4 + (r - g) / chroma;
    h = h / 6 + shift;
    h -= Math.floor(h);
    const h6 = h * 6;
    const sector = Math.floor(h6) % 6;
    const frac = h6 - Math.floor(h6);
    // With value = max and saturation = chroma / max: p = min, q and t interpolate between.
    const q = max - chroma * frac;
    const t = min + chroma * frac;
    let nr: number, ng: number, nb: number;
    switch (sector) {
      case 0: nr = max; ng = t; nb = min; break;
      case 1: nr = q; ng = max; nb = min; break;
      case 2: nr = min; ng = max; nb = t; break;
      case 3: nr = min; ng = q; nb = max; break;
      case 4: nr = t; ng = min; nb = max; break;
      default: nr = max; ng = min; nb = q; break;
    }
    img[i] = nr;
    img[i + 1] = ng;
    img[i + 2] = nb;
  }
}

/** Applies one ColorJitter draw in place to the first `len` values of an HWC image in 0..255. */
export function applyColorJitter(img: Float64Array, len: number, p: JitterParams): void {
  for (const op of p.order) {
    if (op === 0 && p.brightness !== null) adjustBrightness(img, len, p.brightness);
    else if (op === 1 && p.contrast !== null) adjustContrast(img, len, p.contrast);
    else if (op === 2 && p.saturation !== null) adjustSaturation(img, len, p.saturation);
    else if (op === 3 && p.hue !== null) adjustHue(img, len, p.hue);
  }
}

function toGrayscale(img: Float64Array, len: number): void {
  for (let i = 0; i < len; i += 3) {
    const g = LUMA_R * img[i]! + LUMA_G * img[i + 1]! + LUMA_B * img[i + 2]!;
    img[i] = g;
    img[i + 1] = g;
    img[i + 2] = g;
  }
}

/** Separable Gaussian blur of the n x n working image with reflect padding (as torchvision pads). */
function gaussianBlur(n: number, sigma: number): void {
  // Taps beyond 4 sigma carry under 1e-4 of the mass (below uint8 resolution): dropping them halves
  // the cost of the 23-tap kernel at 224 px for the typical sigma without a visible difference.
  const radius = Math.min((blurKernelSize(n) - 1) >> 1, Math.ceil(4 * sigma));
  const k = 2 * radius + 1;
  const kernel = new Float64Array(k);
  let sum = 0;
  for (let t = 0; t < k; t++) {
    const d = t - radius;
    kernel[t] = Math.exp((-d * d) / (2 * sigma * sigma));
    sum += kernel[t]!;
  }
  for (let t = 0; t < k; t++) kernel[t] = kernel[t]! / sum;
  // Source row of tap t for output row p, reflected at the borders.
  const index = new Int32Array(n * k);
  for (let p = 0; p < n; p++) for (let t = 0; t < k; t++) index[p * k + t] = reflect(p + t - radius, n);
  ws.reserve(n * n * 3, n * n * 3);
  const { img, tmp } = ws;
  blurRows(img, tmp, n, kernel);
  blurColumns(tmp, img, n, kernel, index);
}

/** Mirror index without repeating the edge (torchvision's 'reflect' padding). */
function reflect(s: number, n: number): number {
  if (s < 0) return -s;
  if (s >= n) return 2 * (n - 1) - s;
  return s;
}

/** Horizontal blur pass, src → dst: each row is copied into a reflect-padded line, then convolved. */
function blurRows(src: Float64Array, dst: Float64Array, n: number, kernel: Float64Array): void {
  const k = kernel.length;
  const radius = (k - 1) >> 1;
  if (ws.line.length < (n + k) * 3) ws.line = new Float64Array((n + k) * 3);
  const line = ws.line;
  for (let y = 0; y < n; y++) {
    const row = y * n * 3;
    for (let i = 0; i < n + k - 1; i++) {
      const s = row + reflect(i - radius, n) * 3;
      line[i * 3] = src[s]!;
      line[i * 3 + 1] = src[s + 1]!;
      line[i * 3 + 2] = src[s + 2]!;
    }
    for (let x = 0; x < n; x++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let t = 0, q = x * 3; t < k; t++, q += 3) {
        const wt = kernel[t]!;
        a += line[q]! * wt;
        b += line[q + 1]! * wt;
        c += line[q + 2]! * wt;
      }
      const d = row + x * 3;
      dst[d] = a;
      dst[d + 1] = b;
      dst[d + 2] = c;
    }
  }
}

/** Vertical blur pass, src → dst, as weighted sums of whole rows (contiguous, cache-friendly). */
function blurColumns(src: Float64Array, dst: Float64Array, n: number, kernel: Float64Array, index: Int32Array): void {
  const k = kernel.length;
  const rowLen = n * 3;
  for (let y = 0; y < n; y++) {
    const d = y * rowLen;
    dst.fill(0, d, d + rowLen);
    for (let t = 0; t < k; t++) {
      const s = index[y * k + t]! * rowLen;
      const wt = kernel[t]!;
      for (let i = 0; i < rowLen; i++) dst[d + i] += src[s + i]! * wt;
    }
  }
}

/** Per-channel scale and bias taking 0..255 values to the normalised range. */
function normalizationAffine(norm: Normalization): { scale: Float64Array; bias: Float64Array } {
  if (norm === 'bit') return { scale: new Float64Array(3).fill(1 / 127.5), bias: new Float64Array(3).fill(-1) };
  const scale = new Float64Array(3);
  const bias = new Float64Array(3);
  for (let c = 0; c < 3; c++) {
    scale[c] = 1 / (255 * IMAGENET_STD[c]!);
    bias[c] = -IMAGENET_MEAN[c]! / IMAGENET_STD[c]!;
  }
  return { scale, bias };
}

const AFFINE: Record<Normalization, ReturnType<typeof normalizationAffine>> = {
  imagenet: normalizationAffine('imagenet'),
  bit: normalizationAffine('bit'),
};

/** Normalises ws.img into out[offset..], mirroring columns when `flip` (free here, no extra pass). */
function writeNormalized(n: number, norm: Normalization, flip: boolean, out: Float32Array, offset: number): void {
  const affine = AFFINE[norm];
  if (affine === undefined) throw new Error(`unknown normalization '${String(norm)}'`);
  const { scale, bias } = affine;
  const s0 = scale[0]!, s1 = scale[1]!, s2 = scale[2]!;
  const b0 = bias[0]!, b1 = bias[1]!, b2 = bias[2]!;
  const img = ws.img;
  for (let y = 0; y < n; y++) {
    const row = y * n;
    for (let x = 0; x < n; x++) {
      const s = (row + (flip ? n - 1 - x : x)) * 3;
      const d = offset + (row + x) * 3;
      out[d] = img[s]! * s0 + b0;
      out[d + 1] = img[s + 1]! * s1 + b1;
      out[d + 2] = img[s + 2]! * s2 + b2;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Public entry points.

/** Writes one augmented view of `src` (h x w x 3 uint8) to out[outOffset .. + outSize²·3]. */
export function augmentView(
  src: Uint8Array,
  h: number,
  w: number,
  outSize: number,
  cfg: AugmentConfig,
  rng: Rng,
  out: Float32Array,
  outOffset: number,
  norm: Normalization,
): void {
  const len = outSize * outSize * 3;
  resampleCrop(src, w, sampleCropBox(h, w, cfg.crop_scale, cfg.crop_ratio, rng), outSize);
  if (rng.bernoulli(cfg.jitter_prob)) applyColorJitter(ws.img, len, sampleJitter(cfg, rng));
  if (rng.bernoulli(cfg.grayscale_prob)) toGrayscale(ws.img, len);
  if (rng.bernoulli(blurProbability(cfg, outSize))) {
    gaussianBlur(outSize, rng.uniform(cfg.blur_sigma[0], cfg.blur_sigma[1]));
  }
  const flip = rng.bernoulli(cfg.flip_prob);
  writeNormalized(outSize, norm, flip, out, outOffset);
}

/**
 * Augments one view per entry of `viewItems`: view v of batch row i is an augmentation of item
 * viewItems[v][i], drawn from Rng(seed, 'aug', epoch, viewItems[v][i], v). A view's pixels therefore
 * depend only on (seed, epoch, item, view), never on the batch around it (exact resume), and views of
 * different items can share a row (SimTriplet: anchor, neighbour, anchor).
 * Returns one [B, outSize, outSize, 3] float32 buffer per view.
 */
export function augmentViews(
  ds: ImageDataset,
  viewItems: ReadonlyArray<ArrayLike<number>>,
  outSize: number,
  cfg: AugmentConfig,
  norm: Normalization,
  key: { seed: number; epoch: number },
): Float32Array[] {
  const per = outSize * outSize * 3;
  const batch = viewItems[0]?.length ?? 0;
  return viewItems.map((items, v) => {
    if (items.length !== batch) throw new Error(`view ${v} lists ${items.length} items, view 0 lists ${batch}`);
    const out = new Float32Array(batch * per);
    for (let i = 0; i < batch; i++) {
      const item = items[i]!;
      const rng = new Rng(key.seed, 'aug', key.epoch, item, v);
      augmentView(ds.image(item), ds.height, ds.width, outSize, cfg, rng, out, i * per, norm);
    }
    return out;
  });
}

/** `views` independent views of each indexed item (SimSiam): augmentViews with the same items per view. */
export function augmentBatch(
  ds: ImageDataset,
  indices: ArrayLike<number>,
  outSize: number,
  cfg: AugmentConfig,
  norm: Normalization,
  key: { seed: number; epoch: number },
  views: number,
): Float32Array[] {
  return augmentViews(ds, Array.from({ length: views }, () => indices), outSize, cfg, norm, key);
}

/** Evaluation preprocessing: resize the whole image to outSize x outSize (bilinear), normalise. */
export function preprocessEval(
  ds: ImageDataset,
  indices: ArrayLike<number>,
  outSize: number,
  norm: Normalization,
): Float32Array {
  const per = outSize * outSize * 3;
  const out = new Float32Array(indices.length * per);
  const whole: CropBox = { top: 0, left: 0, height: ds.height, width: ds.width };
  const sameSize = ds.height === outSize && ds.width === outSize;
  for (let i = 0; i < indices.length; i++) {
    const src = ds.image(indices[i]!);
    if (sameSize) {
      ws.reserve(per, 0);
      for (let j = 0; j < per; j++) ws.img[j] = src[j]!;
    } else {
      resampleCrop(src, ds.width, whole, outSize);
    }
    writeNormalized(outSize, norm, false, out, i * per);
  }
  return out;
}

/** The whole image resized to side x side (the evaluation resize), as uint8 HWC: thumbnails for reports. */
export function thumbnail(ds: Pick<ImageDataset, 'height' | 'width' | 'image'>, index: number, side: number): Uint8Array {
  const src = ds.image(index);
  const out = new Uint8Array(side * side * 3);
  if (ds.height === side && ds.width === side) {
    out.set(src);
    return out;
  }
  resampleCrop(src, ds.width, { top: 0, left: 0, height: ds.height, width: ds.width }, side);
  for (let i = 0; i < out.length; i++) out[i] = Math.round(clamp255(ws.img[i]!));
  return out;
}

/**
 * A normalised view (float32 NHWC, as augmentViews writes it) back to uint8 pixels: what the network
 * was shown, for previews. The inverse of the normalisation, rounded.
 */
export function viewPixels(views: Float32Array, index: number, side: number, norm: Normalization): Uint8Array {
  const { scale, bias } = AFFINE[norm];
  const per = side * side * 3;
  const out = new Uint8Array(per);
  const base = index * per;
  for (let i = 0; i < per; i++) {
    const c = i % 3;
    out[i] = Math.round(clamp255((views[base + i]! - bias[c]!) / scale[c]!));
  }
  return out;
}
