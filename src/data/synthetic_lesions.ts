/**
 * Procedural dermoscopy-like images of skin lesions for the 7 HAM10000 diagnoses, so HAM10000 runs
 * can be tried, tested and benchmarked without the real data (which needs a licence and a download).
 *
 * The classes differ the way their dermoscopic patterns do, mostly in structure: a naevus is a round,
 * symmetric brown disc with a regular pigment network; a melanoma is larger, asymmetric, with an
 * irregular border and blotches of several colours; a benign keratosis is a sharp-edged, "stuck-on"
 * tan plaque with fissures and milia-like white dots; a basal cell carcinoma is pinkish and pearly
 * with branching red vessels and blue-grey nests; an actinic keratosis is a reddish, ill-defined
 * patch with white scales and dotted vessels; a dermatofibroma is a small brown ring around a white
 * scar; a vascular lesion is a cluster of red-purple lobules. Skin tone, size, rotation, zoom,
 * position, lighting, hairs and the dermoscope's dark corners vary in every class, so no single
 * nuisance gives the class away.
 *
 * A lesion is drawn once (shape, colours, textures, primitives in a frame attached to the lesion);
 * each of its images renders that lesion from another angle, zoom and lighting, as the several
 * dermoscopy images of one lesion in HAM10000 are.
 */
import { Rng, mix32 } from '../util/rng.js';

type RGB = readonly [number, number, number];

/** A disc or a segment in the lesion frame (units of the image's shorter side), blended with alpha. */
interface Dot {
  x: number;
  y: number;
  r: number;
  colour: RGB;
  alpha: number;
}

interface Segment {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  width: number;
  colour: RGB;
  alpha: number;
}

export interface Lesion {
  /** Index into HAM10000_CLASS_NAMES. */
  dx: number;
  skin: RGB;
  /** Mean radius, in units of the image's shorter side. */
  radius: number;
  /** Border harmonics: r(θ) = radius · (1 + Σ amp·cos(k θ + phase)). */
  border: { k: number; amp: number; phase: number }[];
  /** Width of the soft edge as a fraction of the radius (ill-defined borders are wide). */
  edge: number;
  /** Colour at the centre and at the rim of the lesion body; blotch colours mixed in by noise. */
  core: RGB;
  rim: RGB;
  blotches: RGB[];
  /** Amplitude of the dark pigment-network lattice and its period (lesion-frame units). */
  network: { amp: number; period: number; regularity: number };
  /** Dark-line fissures (cerebriform pattern) amplitude. */
  fissures: number;
  /** Central white patch (dermatofibroma scar) radius as a fraction of the radius. */
  scar: number;
  dots: Dot[];
  segments: Segment[];
  /** Seed of the lesion's texture noise. */
  noise: number;
}

const SCAR: RGB = [238, 228, 218];

const SKIN: readonly RGB[] = [
  [236, 196, 178],
  [224, 178, 152],
  [205, 158, 128],
  [176, 128, 98],
];

function mixRgb(a: RGB, b: RGB, t: number): RGB {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

function jitter(c: RGB, amount: number, rng: Rng): RGB {
  return [c[0] + rng.uniform(-amount, amount), c[1] + rng.uniform(-amount, amount), c[2] + rng.uniform(-amount, amount)];
}

/** A point inside the unit disc scaled by `r`, uniform in area. */
function inDisc(r: number, rng: Rng): { x: number; y: number } {
  const a = rng.uniform(0, 2 * Math.PI);
  const d = r * Math.sqrt(rng.next());
  return { x: d * Math.cos(a), y: d * Math.sin(a) };
}

/** A random branching tree of thin segments from near the centre outwards (arborising vessels). */
function branches(radius: number, colour: RGB, rng: Rng): Segment[] {
  const out: Segment[] = [];
  const grow = (x: number, y: number, angle: number, length: number, width: number, depth: number) => {
    const x1 = x + length * Math.cos(angle);
    const y1 = y + length * Math.sin(angle);
    out.push({ x0: x, y0: y, x1, y1, width, colour, alpha: 0.85 });
    if (depth === 0 || Math.sqrt(x1 * x1 + y1 * y1) > radius * 0.9) return;
    const forks = 1 + rng.int(2);
    for (let f = 0; f < forks; f++) grow(x1, y1, angle + rng.uniform(-0.9, 0.9), length * rng.uniform(0.6, 0.85), width * 0.75, depth - 1);
  };
  const trunks = 2 + rng.int(3);
  for (let t = 0; t < trunks; t++) {
    const start = inDisc(radius * 0.4, rng);
    grow(start.x, start.y, rng.uniform(0, 2 * Math.PI), radius * rng.uniform(0.3, 0.5), radius * 0.035, 3);
  }
  return out;
}

/** Draws one lesion of class `dx` (HAM10000_CLASS_NAMES order: akiec, bcc, bkl, df, mel, nv, vasc). */
export function drawLesion(dx: number, rng: Rng): Lesion {
  const skin = jitter(SKIN[rng.int(SKIN.length)]!, 8, rng);
  const harmonics = (amp: number) =>
    Array.from({ length: 5 }, (_, i) => ({ k: i + 2, amp: amp * rng.uniform(0.3, 1) / (1 + i * 0.5), phase: rng.uniform(0, 2 * Math.PI) }));
  const base: Lesion = {
    dx,
    skin,
    radius: 0.2,
    border: harmonics(0.03),
    edge: 0.08,
    core: [130, 85, 60],
    rim: [165, 115, 90],
    blotches: [],
    network: { amp: 0, period: 0.03, regularity: 1 },
    fissures: 0,
    scar: 0,
    dots: [],
    segments: [],
    noise: rng.nextU32(),
  };
  switch (dx) {
    case 0: {
      // akiec: red, scaly, ill-defined; dotted ("strawberry") vessels.
      base.radius = rng.uniform(0.18, 0.3);
      base.border = harmonics(0.1);
      base.edge = 0.45;
      base.core = jitter([200, 105, 100], 12, rng);
      base.rim = mixRgb(base.core, skin, 0.5);
      base.blotches = [[238, 226, 208]];
      for (let i = 0; i < 40; i++) {
        const p = inDisc(base.radius * 0.85, rng);
        base.dots.push({ ...p, r: base.radius * rng.uniform(0.015, 0.03), colour: [170, 40, 50], alpha: 0.8 });
      }
      break;
    }
    case 1: {
      // bcc: pink, pearly, arborising vessels and blue-grey ovoid nests.
      base.radius = rng.uniform(0.14, 0.24);
      base.border = harmonics(0.06);
      base.edge = 0.15;
      base.core = jitter([228, 182, 182], 10, rng);
      base.rim = jitter([214, 160, 160], 10, rng);
      base.segments = branches(base.radius, [175, 30, 45], rng);
      const nests = 1 + rng.int(4);
      for (let i = 0; i < nests; i++) {
        const p = inDisc(base.radius * 0.7, rng);
        base.dots.push({ ...p, r: base.radius * rng.uniform(0.1, 0.2), colour: [95, 105, 130], alpha: 0.75 });
      }
      break;
    }
    case 2: {
      // bkl: sharp-edged tan plaque, fissures and milia-like cysts.
      base.radius = rng.uniform(0.17, 0.3);
      base.border = harmonics(0.05);
      base.edge = 0.04;
      base.core = jitter([168, 126, 88], 14, rng);
      base.rim = jitter([188, 148, 108], 14, rng);
      base.fissures = 55;
      const milia = 8 + rng.int(16);
      for (let i = 0; i < milia; i++) {
        const p = inDisc(base.radius * 0.85, rng);
        base.dots.push({ ...p, r: base.radius * rng.uniform(0.025, 0.05), colour: [246, 240, 222], alpha: 0.9 });
      }
      break;
    }
    case 3: {
      // df: small, round; brown ring around a central white scar.
      base.radius = rng.uniform(0.09, 0.16);
      base.border = harmonics(0.03);
      base.edge = 0.3;
      base.core = jitter([150, 100, 75], 10, rng);
      base.rim = base.core;
      base.network = { amp: 25, period: 0.025, regularity: 1 };
      base.scar = rng.uniform(0.35, 0.55);
      break;
    }
    case 4: {
      // mel: large, asymmetric, irregular border, several colours, atypical network.
      base.radius = rng.uniform(0.24, 0.38);
      base.border = [{ k: 1, amp: rng.uniform(0.1, 0.2), phase: rng.uniform(0, 2 * Math.PI) }, ...harmonics(0.22)];
      base.edge = 0.12;
      base.core = jitter([70, 42, 32], 10, rng);
      base.rim = jitter([125, 80, 55], 12, rng);
      base.blotches = [
        [35, 28, 30],
        [105, 115, 140],
        [165, 80, 78],
      ];
      base.network = { amp: 45, period: rng.uniform(0.025, 0.045), regularity: 0.3 };
      break;
    }
    case 5: {
      // nv: round, symmetric, uniformly brown with a regular network.
      base.radius = rng.uniform(0.15, 0.26);
      base.border = harmonics(0.025);
      base.edge = 0.1;
      base.core = jitter([128, 86, 58], 14, rng);
      base.rim = mixRgb(base.core, skin, 0.35);
      base.network = { amp: 30, period: rng.uniform(0.02, 0.03), regularity: 1 };
      break;
    }
    default: {
      // vasc: red-purple lobules separated by pale septa.
      base.radius = rng.uniform(0.1, 0.2);
      base.border = harmonics(0.08);
      base.edge = 0.06;
      base.core = jitter([205, 135, 145], 8, rng);
      base.rim = base.core;
      const lobules = 5 + rng.int(8);
      for (let i = 0; i < lobules; i++) {
        const p = inDisc(base.radius * 0.7, rng);
        const colour = mixRgb([165, 25, 55], [85, 25, 80], rng.next());
        base.dots.push({ ...p, r: base.radius * rng.uniform(0.18, 0.35), colour, alpha: 0.95 });
      }
    }
  }
  return base;
}

/** Lattice value in [-1, 1] at integer (cx, cy). */
function lattice(cx: number, cy: number, seed: number): number {
  return mix32(mix32(seed ^ Math.imul(cx, 0x27d4eb2d)) ^ Math.imul(cy, 0x165667b1)) / 2147483648 - 1;
}

/** Smooth value noise in [-1, 1] over a lattice of unit cells, from a 32-bit seed. */
function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  const fx = x - ix;
  const fy = y - iy;
  const sx = fx * fx * (3 - 2 * fx);
  const sy = fy * fy * (3 - 2 * fy);
  const a = lattice(ix, iy, seed);
  const b = lattice(ix + 1, iy, seed);
  const c = lattice(ix, iy + 1, seed);
  const d = lattice(ix + 1, iy + 1, seed);
  return a + (b - a) * sx + (c - a) * sy + (a - b - c + d) * sx * sy;
}

/** Two octaves of value noise at `scale` lattice cells per unit. */
function fbm(x: number, y: number, scale: number, seed: number): number {
  return 0.67 * valueNoise(x * scale, y * scale, seed) + 0.33 * valueNoise(x * scale * 2.1, y * scale * 2.1, seed ^ 0x5bd1e995);
}

/**
 * Skin mottling (low-frequency noise of ±7 grey levels), in the image frame. The noise varies over
 * tens of pixels, so it is evaluated every 4 pixels and interpolated: 16 times fewer noise calls.
 */
function skinMottle(width: number, height: number, s: number, seed: number): Float32Array {
  const step = 4;
  const gw = Math.ceil(width / step) + 1;
  const gh = Math.ceil(height / step) + 1;
  const grid = new Float32Array(gw * gh);
  for (let j = 0; j < gh; j++) for (let i = 0; i < gw; i++) grid[j * gw + i] = 7 * fbm((i * step) / s, (j * step) / s, 6, seed);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const j = Math.floor(y / step);
    const fy = y / step - j;
    for (let x = 0; x < width; x++) {
      const i = Math.floor(x / step);
      const fx = x / step - i;
      const a = grid[j * gw + i]!;
      const b = grid[j * gw + i + 1]!;
      const c = grid[(j + 1) * gw + i]!;
      const d = grid[(j + 1) * gw + i + 1]!;
      out[y * width + x] = (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
    }
  }
  return out;
}

/** Where and how one image looks at its lesion. */
interface View {
  /** Lesion centre in pixels. */
  cx: number;
  cy: number;
  cos: number;
  sin: number;
  /** Pixels per lesion-frame unit. */
  scale: number;
}

function smoothstep(e0: number, e1: number, x: number): number {
  const t = Math.min(1, Math.max(0, (x - e0) / (e1 - e0)));
  return t * t * (3 - 2 * t);
}

/** Blends `colour` into the RGB pixel at buf[i..i+2] with opacity a. */
function blend(buf: Float32Array, i: number, colour: RGB, a: number): void {
  buf[i] = buf[i]! + (colour[0] - buf[i]!) * a;
  buf[i + 1] = buf[i + 1]! + (colour[1] - buf[i + 1]!) * a;
  buf[i + 2] = buf[i + 2]! + (colour[2] - buf[i + 2]!) * a;
}

/** Paints an antialiased capsule (a segment with round ends; a disc when both ends coincide), in pixels. */
function paintCapsule(
  buf: Float32Array,
  mask: Float32Array | undefined,
  width: number,
  height: number,
  x0: number,
  y0: number,
  x1: number,
  y1: number,
  radius: number,
  colour: RGB,
  alpha: number,
): void {
  const reach = radius + 1;
  const xa = Math.max(0, Math.floor(Math.min(x0, x1) - reach));
  const xb = Math.min(width - 1, Math.ceil(Math.max(x0, x1) + reach));
  const ya = Math.max(0, Math.floor(Math.min(y0, y1) - reach));
  const yb = Math.min(height - 1, Math.ceil(Math.max(y0, y1) + reach));
  const dx = x1 - x0;
  const dy = y1 - y0;
  const len2 = dx * dx + dy * dy;
  for (let y = ya; y <= yb; y++) {
    for (let x = xa; x <= xb; x++) {
      const px = x + 0.5 - x0;
      const py = y + 0.5 - y0;
      const t = len2 === 0 ? 0 : Math.min(1, Math.max(0, (px * dx + py * dy) / len2));
      const d = Math.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - radius;
      const cover = d < -0.5 ? 1 : d > 0.5 ? 0 : 0.5 - d;
      if (cover === 0) continue;
      const p = y * width + x;
      const a = cover * alpha * (mask ? mask[p]! : 1);
      if (a > 0) blend(buf, p * 3, colour, a);
    }
  }
}

/** Blends c towards `to` by t, in place. */
function mixInto(c: Float64Array, to: RGB, t: number): void {
  c[0] = c[0]! + (to[0] - c[0]!) * t;
  c[1] = c[1]! + (to[1] - c[1]!) * t;
  c[2] = c[2]! + (to[2] - c[2]!) * t;
}

/**
 * The lesion body's colour at lesion-frame (u, v), t = distance from the centre relative to the
 * border (0 centre, 1 border), into `out`. Scalar code into a scratch array: this runs per pixel.
 */
function bodyColour(lesion: Lesion, u: number, v: number, t: number, out: Float64Array): void {
  out[0] = lesion.core[0];
  out[1] = lesion.core[1];
  out[2] = lesion.core[2];
  mixInto(out, lesion.rim, smoothstep(0, 1, t));
  // Blotches of each extra colour where its own noise field is high.
  for (let k = 0; k < lesion.blotches.length; k++) {
    const f = fbm(u, v, 9, lesion.noise + 101 * (k + 1));
    mixInto(out, lesion.blotches[k]!, 0.85 * smoothstep(0.15, 0.45, f));
  }
  if (lesion.scar > 0) mixInto(out, SCAR, 1 - smoothstep(lesion.scar * 0.6, lesion.scar, t));
  let dark = 6 * fbm(u, v, 14, lesion.noise);
  const net = lesion.network;
  if (net.amp > 0) {
    // Pigment network: dark lines on a lattice, warped and broken up by noise when irregular (melanoma).
    let px = u / net.period;
    let py = v / net.period;
    let broken = 1;
    if (net.regularity < 1) {
      const warp = (1 - net.regularity) * 2.4;
      px += warp * fbm(u, v, 5, lesion.noise + 7);
      py += warp * fbm(u, v, 5, lesion.noise + 8);
      broken = smoothstep(-0.3, 0.2, fbm(u, v, 7, lesion.noise + 9));
    }
    const line = Math.max(Math.abs(Math.cos(Math.PI * px)), Math.abs(Math.cos(Math.PI * py)));
    dark += net.amp * smoothstep(0.75, 1, line) * broken * (1 - 0.5 * t);
  }
  if (lesion.fissures > 0) dark += lesion.fissures * (1 - smoothstep(0, 0.09, Math.abs(fbm(u, v, 18, lesion.noise + 3))));
  out[0] = out[0]! - dark;
  out[1] = out[1]! - dark;
  out[2] = out[2]! - dark;
}

/**
 * One image of `lesion`, width x height RGB (HWC uint8). `rng` draws the view (angle, zoom, offset,
 * lighting, hairs, vignette): another rng gives another image of the same lesion.
 */
export function renderLesion(lesion: Lesion, width: number, height: number, rng: Rng): Uint8Array {
  const s = Math.min(width, height);
  const angle = rng.uniform(0, 2 * Math.PI);
  const view: View = {
    cx: width / 2 + rng.uniform(-0.08, 0.08) * width,
    cy: height / 2 + rng.uniform(-0.08, 0.08) * height,
    cos: Math.cos(angle),
    sin: Math.sin(angle),
    scale: s * rng.uniform(0.85, 1.15),
  };
  const gain = [rng.uniform(0.92, 1.08), rng.uniform(0.92, 1.08), rng.uniform(0.92, 1.08)];
  const light = { dx: rng.uniform(-0.12, 0.12), dy: rng.uniform(-0.12, 0.12) };
  const vignette = rng.bernoulli(0.5) ? rng.uniform(0.5, 0.62) : 0;
  const skinSeed = rng.nextU32();

  const n = width * height;
  const buf = new Float32Array(n * 3);
  const mask = new Float32Array(n);
  const maxR = lesion.radius * (1 + lesion.border.reduce((a, h) => a + Math.abs(h.amp), 0)) * (1 + lesion.edge);
  const mottle = skinMottle(width, height, s, skinSeed);
  const body = new Float64Array(3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const mott = mottle[p]!;
      let r = lesion.skin[0] + mott;
      let g = lesion.skin[1] + mott * 0.9;
      let b = lesion.skin[2] + mott * 0.8;
      // Lesion frame: rotate and scale about the lesion centre.
      const ox = (x + 0.5 - view.cx) / view.scale;
      const oy = (y + 0.5 - view.cy) / view.scale;
      const u = view.cos * ox + view.sin * oy;
      const v = -view.sin * ox + view.cos * oy;
      const rho = Math.sqrt(u * u + v * v);
      if (rho < maxR) {
        const theta = Math.atan2(v, u);
        let rad = 1;
        for (let k = 0; k < lesion.border.length; k++) {
          const h = lesion.border[k]!;
          rad += h.amp * Math.cos(h.k * theta + h.phase);
        }
        const t = rho / (lesion.radius * rad);
        const cover = 1 - smoothstep(1 - lesion.edge, 1 + lesion.edge, t);
        if (cover > 0) {
          bodyColour(lesion, u, v, t, body);
          r += (body[0]! - r) * cover;
          g += (body[1]! - g) * cover;
          b += (body[2]! - b) * cover;
          mask[p] = cover;
        }
      }
      buf[p * 3] = r;
      buf[p * 3 + 1] = g;
      buf[p * 3 + 2] = b;
    }
  }
  // Primitives in the lesion frame, mapped to pixels (rotation and uniform zoom keep discs round).
  const toPx = (u: number, v: number) => ({ x: view.cx + (view.cos * u - view.sin * v) * view.scale, y: view.cy + (view.sin * u + view.cos * v) * view.scale });
  for (const d of lesion.dots) {
    const c = toPx(d.x, d.y);
    paintCapsule(buf, mask, width, height, c.x, c.y, c.x, c.y, d.r * view.scale, d.colour, d.alpha);
  }
  for (const sg of lesion.segments) {
    const a = toPx(sg.x0, sg.y0);
    const e = toPx(sg.x1, sg.y1);
    paintCapsule(buf, mask, width, height, a.x, a.y, e.x, e.y, Math.max(0.5, (sg.width * view.scale) / 2), sg.colour, sg.alpha);
  }
  // Hairs: dark, thin, gently curved strands across the image, in any class.
  const hairs = rng.int(4);
  for (let h = 0; h < hairs; h++) {
    let x = rng.uniform(0, width);
    let y = rng.uniform(0, height);
    let dir = rng.uniform(0, 2 * Math.PI);
    const bend = rng.uniform(-0.04, 0.04);
    const step = s * 0.03;
    const hairWidth = Math.max(0.5, s * 0.003);
    for (let k = 0; k < 30; k++) {
      const nx = x + step * Math.cos(dir);
      const ny = y + step * Math.sin(dir);
      paintCapsule(buf, undefined, width, height, x, y, nx, ny, hairWidth, [45, 32, 28], 0.9);
      x = nx;
      y = ny;
      dir += bend;
    }
  }
  // Lighting, the dermoscope's dark corners, sensor noise.
  const out = new Uint8Array(n * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const nx = (x + 0.5 - width / 2) / s;
      const ny = (y + 0.5 - height / 2) / s;
      let l = 1 + light.dx * nx * 2 + light.dy * ny * 2;
      if (vignette > 0) l *= 1 - smoothstep(vignette, vignette + 0.12, Math.sqrt(nx * nx + ny * ny));
      const bits = rng.nextU32();
      for (let c = 0; c < 3; c++) {
        const noise = (((bits >>> (c * 10)) & 1023) / 1023 - 0.5) * 6;
        const value = buf[p * 3 + c]! * gain[c]! * l + noise;
        out[p * 3 + c] = value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
      }
    }
  }
  return out;
}
