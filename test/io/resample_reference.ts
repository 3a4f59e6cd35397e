/**
 * native/jpeg/resample.cc written out plainly in TypeScript, in float64: the reference the native
 * resampler is held to (within one grey level: the native one accumulates in float32).
 */
export type ReferenceKernel = 'nearest' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

const SUPPORT: Record<ReferenceKernel, number> = { nearest: 0.5, cubic: 2, mitchell: 2, lanczos2: 2, lanczos3: 3 };

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

function keys(x: number, b: number, c: number): number {
  const a = Math.abs(x);
  if (a < 1) return ((12 - 9 * b - 6 * c) * a ** 3 + (-18 + 12 * b + 6 * c) * a ** 2 + (6 - 2 * b)) / 6;
  if (a < 2) return ((-b - 6 * c) * a ** 3 + (6 * b + 30 * c) * a ** 2 + (-12 * b - 48 * c) * a + (8 * b + 24 * c)) / 6;
  return 0;
}

function kernelAt(k: ReferenceKernel, x: number): number {
  switch (k) {
    case 'nearest':
      return x >= -0.5 && x < 0.5 ? 1 : 0;
    case 'cubic':
      return keys(x, 0, 0.5);
    case 'mitchell':
      return keys(x, 1 / 3, 1 / 3);
    case 'lanczos2':
      return Math.abs(x) < 2 ? sinc(x) * sinc(x / 2) : 0;
    case 'lanczos3':
      return Math.abs(x) < 3 ? sinc(x) * sinc(x / 3) : 0;
  }
}

/** Weights of each output pixel along one axis over the source window [start, start + length). */
function axisWeights(start: number, length: number, srcSize: number, outSize: number, k: ReferenceKernel) {
  const scale = length / outSize;
  const stretch = k === 'nearest' ? 1 : Math.max(scale, 1);
  const reach = SUPPORT[k] * stretch;
  return Array.from({ length: outSize }, (_, i) => {
    const centre = start + (i + 0.5) * scale;
    let lo = Math.max(Math.trunc(centre - reach + 0.5), 0);
    let hi = Math.min(Math.trunc(centre + reach + 0.5), srcSize);
    if (hi <= lo) {
      lo = Math.min(Math.max(Math.trunc(centre), 0), srcSize - 1);
      hi = lo + 1;
    }
    const w = Array.from({ length: hi - lo }, (_, j) => kernelAt(k, (lo + j + 0.5 - centre) / stretch));
    const sum = w.reduce((a, b) => a + b, 0);
    if (sum === 0) {
      // Nearest with the centre on the window's open edge: the pixel the centre falls in.
      w.fill(0);
      w[Math.min(Math.max(Math.trunc(centre), lo), hi - 1) - lo] = 1;
      return { lo, w };
    }
    return { lo, w: w.map((v) => v / sum) };
  });
}

/** out (outH x outW x 3) = the source windows of src (srcH x srcW x 3) resampled with kernel k. */
export function resampleReference(
  src: Uint8Array,
  srcW: number,
  srcH: number,
  x: { start: number; length: number },
  y: { start: number; length: number },
  outW: number,
  outH: number,
  k: ReferenceKernel,
): Uint8Array {
  const wx = axisWeights(x.start, x.length, srcW, outW, k);
  const wy = axisWeights(y.start, y.length, srcH, outH, k);
  const rows = new Float64Array(srcH * outW * 3);
  for (let r = 0; r < srcH; r++) {
    wx.forEach(({ lo, w }, i) => {
      for (let c = 0; c < 3; c++) rows[(r * outW + i) * 3 + c] = w.reduce((acc, wj, j) => acc + wj * src[(r * srcW + lo + j) * 3 + c]!, 0);
    });
  }
  const out = new Uint8Array(outW * outH * 3);
  wy.forEach(({ lo, w }, o) => {
    for (let i = 0; i < outW * 3; i++) {
      const v = w.reduce((acc, wj, j) => acc + wj * rows[(lo + j) * outW * 3 + i]!, 0);
      out[o * outW * 3 + i] = Math.min(255, Math.max(0, Math.round(v)));
    }
  });
  return out;
}
