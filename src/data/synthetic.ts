/**
 * A procedural, seeded 10-class image dataset for tests and smoke runs: no download, learnable by SSL
 * in a few epochs, and separable by a linear probe.
 *
 * Classes differ by shape or texture only. Position, scale, rotation, both colours, a background
 * gradient and pixel noise are random within every class, so no class can be told by colour alone
 * (colour jitter and grayscale in the augmentation would otherwise destroy the signal).
 */
import { Rng } from '../util/rng.js';
import { ArrayImageDataset } from './dataset.js';

export const SYNTHETIC_CLASS_NAMES = [
  'disc',
  'square',
  'triangle',
  'ring',
  'cross',
  'horizontal stripes',
  'vertical stripes',
  'checkerboard',
  'soft blob',
  'polka dots',
] as const;

export interface SyntheticOptions {
  /** Side of the square images in pixels. */
  size: number;
  count: number;
  seed: number;
  /** Train and test draw different items from the same distribution. */
  split: 'train' | 'test';
}

/** Geometry of one item, in pixels; (u, v) are coordinates in the item's rotated frame. */
interface Shape {
  /** Object radius (shapes) or texture period (textures). */
  r: number;
  /** Blob aspect ratio. */
  aspect: number;
}

const TWO_PI = 2 * Math.PI;
/** The equilateral triangle's slanted edge normals are (±cos 30°, -1/2). */
const COS30 = Math.cos(Math.PI / 6);

/**
 * Coverage of the foreground at (u, v), in [0, 1]. Shapes are written as signed distances (negative
 * inside, in pixels), so one-pixel-wide antialiased edges come for free.
 */
function coverage(label: number, u: number, v: number, s: Shape): number {
  const r = s.r;
  let d: number;
  switch (label) {
    case 0:
      d = Math.sqrt(u * u + v * v) - r;
      break;
    case 1:
      d = Math.max(Math.abs(u), Math.abs(v)) - r * 0.85;
      break;
    case 2:
      d = Math.max(v, Math.abs(u) * COS30 - v * 0.5) - r * 0.5;
      break;
    case 3:
      d = Math.abs(Math.sqrt(u * u + v * v) - r) - r * 0.22;
      break;
    case 4: {
      const au = Math.abs(u);
      const av = Math.abs(v);
      const w = r * 0.28;
      d = Math.min(Math.max(au - r, av - w), Math.max(au - w, av - r));
      break;
    }
    case 5:
      d = (-Math.sin((TWO_PI * v) / r) * r) / TWO_PI;
      break;
    case 6:
      d = (-Math.sin((TWO_PI * u) / r) * r) / TWO_PI;
      break;
    case 7:
      d = (-Math.sin((TWO_PI * u) / r) * Math.sin((TWO_PI * v) / r) * r) / TWO_PI;
      break;
    case 8: {
      const q = (u * u) / (r * r) + (v * v) / (r * r * s.aspect * s.aspect);
      return Math.exp(-q);
    }
    default: {
      const lu = u - r * Math.round(u / r);
      const lv = v - r * Math.round(v / r);
      d = Math.sqrt(lu * lu + lv * lv) - r * 0.28;
      break;
    }
  }
  const a = 0.5 - d;
  return a < 0 ? 0 : a > 1 ? 1 : a;
}

function luma(c: readonly number[]): number {
  return 0.299 * c[0]! + 0.587 * c[1]! + 0.114 * c[2]!;
}

/** Random foreground and background colours with enough luma contrast to survive grayscale. */
function drawColours(rng: Rng): [number[], number[]] {
  const colour = () => [rng.int(256), rng.int(256), rng.int(256)];
  let fg = colour();
  let bg = colour();
  for (let tries = 0; tries < 32 && Math.abs(luma(fg) - luma(bg)) < 70; tries++) {
    fg = colour();
    bg = colour();
  }
  if (Math.abs(luma(fg) - luma(bg)) < 70) fg = luma(bg) > 128 ? [20, 20, 20] : [235, 235, 235];
  return [fg, bg];
}

const TEXTURES = new Set([5, 6, 7, 9]);
const STRIPES = new Set([5, 6]);

/** Renders item `index` into out[offset ..] (size x size x 3). */
function renderItem(out: Uint8Array, offset: number, size: number, label: number, rng: Rng): void {
  const [fg, bg] = drawColours(rng);
  const texture = TEXTURES.has(label);
  // Stripes keep their orientation (within ±15°) so horizontal and vertical stay separate classes.
  const angle = STRIPES.has(label) ? rng.uniform(-0.26, 0.26) : rng.uniform(0, TWO_PI);
  const shape: Shape = {
    r: texture ? size * rng.uniform(0.16, 0.3) : size * rng.uniform(0.2, 0.34),
    aspect: rng.uniform(0.5, 1),
  };
  const cx = size * (0.5 + rng.uniform(-0.15, 0.15));
  const cy = size * (0.5 + rng.uniform(-0.15, 0.15));
  const gradX = rng.uniform(-30, 30);
  const gradY = rng.uniform(-30, 30);
  const noise = rng.uniform(4, 16);
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  for (let y = 0; y < size; y++) {
    const dy = y + 0.5 - cy;
    for (let x = 0; x < size; x++) {
      const dx = x + 0.5 - cx;
      const a = coverage(label, cos * dx + sin * dy, -sin * dx + cos * dy, shape);
      const shade = gradX * (x / size - 0.5) + gradY * (y / size - 0.5);
      // One 32-bit draw gives three 10-bit noise values.
      const bits = rng.nextU32();
      const p = offset + (y * size + x) * 3;
      for (let c = 0; c < 3; c++) {
        const n = (((bits >>> (c * 10)) & 1023) / 1023 - 0.5) * 2 * noise;
        const value = bg[c]! + (fg[c]! - bg[c]!) * a + shade + n;
        out[p + c] = value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
      }
    }
  }
}

/** Generates `count` items; labels cycle 0..9 so every prefix (data.limit) stays balanced. */
export function makeSynthetic(opts: SyntheticOptions): ArrayImageDataset {
  const { size, count, seed, split } = opts;
  const stride = size * size * 3;
  const pixels = new Uint8Array(count * stride);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    labels[i] = i % SYNTHETIC_CLASS_NAMES.length;
    renderItem(pixels, i * stride, size, labels[i]!, new Rng(seed, 'synthetic', split, i));
  }
  return new ArrayImageDataset(pixels, size, size, labels, SYNTHETIC_CLASS_NAMES);
}
