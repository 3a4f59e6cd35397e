/**
 * Procedural pathology "slides" for SimTriplet tests, demos and benchmarks: no download, and the
 * neighbour structure of real patch data.
 *
 * A slide is a square tissue image, grid x grid patches of patch_size pixels. Its area is divided
 * into irregular regions (a Voronoi partition of warped coordinates; every class owns two regions so
 * each slide shows every class), and each region is painted with one tissue texture. Tissues differ
 * in structure (nucleus size, density and shape, fibre period and waviness, membranes, lumens), and
 * only a little in colour; every slide gets its own stain (per-channel gain and offset), as real
 * slides do, so colour alone does not transfer from one slide to another. Some grid cells are
 * dropped as background (gap_fraction), so some patches have fewer than 8 neighbours.
 *
 * Train slides become unlabelled patches with a grid neighbour index; eval slides become labelled
 * patches (label = the tissue at the patch centre, group = slide). `writeSyntheticSlides` stores the
 * same data in the real on-disk formats for the file loaders.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSharp } from '../util/sharp.js';
import type { DataConfig } from '../config/schema.js';
import { Rng } from '../util/rng.js';
import { ArrayImageDataset } from './dataset.js';
import { forEachConcurrent } from './decode_cache.js';
import { gridNeighbourIndex, type GridPosition, type ListNeighbourIndex } from './neighbours.js';

export type SlidesConfig = DataConfig['slides'];

export const TISSUE_CLASS_NAMES = [
  'tumour',
  'stroma',
  'lymphocytes',
  'muscle',
  'adipose',
  'mucus',
  'debris',
  'necrosis',
  'glands',
] as const;

type RGB = readonly [number, number, number];

interface Tissue {
  /** Eosin-like ground colour. */
  base: RGB;
  /** Pixel noise amplitude. */
  grain: number;
  /** Nuclei per 100 px², radius range, elongation (major/minor), darkness in [0, 1]. */
  nuclei?: { density: number; radius: readonly [number, number]; elongation: number; darkness: number };
  /** Oriented fibres: period (px), amplitude, waviness (phase wobble, radians). */
  fibres?: { period: number; amplitude: number; wave: number };
  /** Fat cells: membrane lattice of this period (px) around pale interiors. */
  membranes?: { period: number; width: number };
  /** Glands: pale lumens of this radius on a lattice, rimmed by a dark epithelial band. */
  lumens?: { period: number; radius: number; rim: number };
  /** Wispy low-frequency swirls (mucus). */
  swirl?: { amplitude: number; scale: number };
}

const HEMATOXYLIN: RGB = [70, 40, 120];

/** Structure first: the first four (the default) share nearly one colour. */
const TISSUE_TABLE: readonly Tissue[] = [
  { base: [214, 158, 196], grain: 8, nuclei: { density: 1.4, radius: [2.6, 4.2], elongation: 1.3, darkness: 0.75 } },
  { base: [222, 160, 190], grain: 6, fibres: { period: 7, amplitude: 22, wave: 1.2 }, nuclei: { density: 0.12, radius: [1.2, 1.8], elongation: 3, darkness: 0.7 } },
  { base: [212, 160, 198], grain: 8, nuclei: { density: 3.2, radius: [1.3, 1.9], elongation: 1, darkness: 0.85 } },
  { base: [220, 152, 184], grain: 5, fibres: { period: 3.5, amplitude: 16, wave: 0.2 }, nuclei: { density: 0.2, radius: [1.1, 1.6], elongation: 3.5, darkness: 0.6 } },
  { base: [236, 222, 232], grain: 4, membranes: { period: 15, width: 1.2 }, nuclei: { density: 0.03, radius: [1.2, 1.8], elongation: 1.8, darkness: 0.6 } },
  { base: [212, 198, 224], grain: 5, swirl: { amplitude: 18, scale: 14 }, nuclei: { density: 0.04, radius: [1.2, 2], elongation: 1, darkness: 0.4 } },
  { base: [208, 158, 182], grain: 14, nuclei: { density: 1.2, radius: [0.6, 2.2], elongation: 1.6, darkness: 0.55 } },
  { base: [228, 182, 200], grain: 16, nuclei: { density: 0.5, radius: [2, 3.2], elongation: 1.2, darkness: 0.25 } },
  { base: [218, 164, 196], grain: 6, lumens: { period: 20, radius: 5.5, rim: 2.5 }, nuclei: { density: 0.15, radius: [1.5, 2.2], elongation: 1.4, darkness: 0.6 } },
];

// Every entry gets every key, in one order: the render loop then reads objects of one shape, which
// V8 keeps fast (objects of nine shapes made the per-pixel property reads several times slower).
const TISSUES: readonly Tissue[] = TISSUE_TABLE.map((t) => ({
  base: t.base,
  grain: t.grain,
  nuclei: t.nuclei,
  fibres: t.fibres,
  membranes: t.membranes,
  lumens: t.lumens,
  swirl: t.swirl,
}));

export interface SlideSpec {
  grid: number;
  patchSize: number;
  classes: number;
  gapFraction: number;
}

export interface Slide {
  name: string;
  /** Side in pixels (grid * patchSize). */
  side: number;
  /** side x side x 3 uint8 RGB. */
  pixels: Uint8Array;
  /** Tissue class of each pixel. */
  classMap: Uint8Array;
  /** The grid cells kept as patches (not background), row-major order. */
  cells: { x: number; y: number; label: number }[];
}

interface Region {
  x: number;
  y: number;
  label: number;
  angle: number;
}

function clamp255(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

/** Distance (in periods, 0..0.5) of u to the nearest integer multiple of the period. */
function latticeOffset(u: number, period: number): number {
  const f = u / period - Math.floor(u / period);
  return Math.abs(f - 0.5);
}

/** Renders one slide; `key` (split and index) and the seed make it reproducible. */
export function renderSlide(spec: SlideSpec, seed: number, split: 'train' | 'eval', index: number): Slide {
  if (spec.classes < 2 || spec.classes > TISSUES.length) throw new RangeError(`classes must be in [2, ${TISSUES.length}], got ${spec.classes}`);
  const rng = new Rng(seed, 'slide', split, index);
  const side = spec.grid * spec.patchSize;
  const n = side * side;

  // Two regions per class, at random places, so every slide shows every tissue.
  const labels = Array.from({ length: 2 * spec.classes }, (_, i) => i % spec.classes);
  const order = rng.permutation(labels.length);
  const regions: Region[] = Array.from(order, (k) => ({
    x: rng.uniform(0, side),
    y: rng.uniform(0, side),
    label: labels[k]!,
    angle: rng.uniform(0, Math.PI),
  }));
  // Smooth warp of the coordinates gives the regions wavy borders instead of straight Voronoi edges.
  const warp = Array.from({ length: 4 }, () => ({ f: rng.uniform(1.5, 3.5) * (2 * Math.PI) / side, p: rng.uniform(0, 2 * Math.PI) }));
  const warpAmp = side * 0.06;
  // Per-slide stain: channel gains and an offset.
  const gain = [rng.uniform(0.9, 1.1), rng.uniform(0.88, 1.12), rng.uniform(0.9, 1.1)];
  const offset = rng.uniform(-12, 12);
  // Per-slide low-frequency illumination.
  const shade = { fx: rng.uniform(0.5, 1.5) * (2 * Math.PI) / side, fy: rng.uniform(0.5, 1.5) * (2 * Math.PI) / side, p: rng.uniform(0, 6.3) };

  const classMap = new Uint8Array(n);
  const regionMap = new Uint16Array(n);
  const colour = new Float32Array(n * 3);
  // Everything that depends on x or y alone is computed once per column or row.
  const warpOfY = Float64Array.from({ length: side }, (_, y) => warpAmp * Math.sin(y * warp[0]!.f + warp[0]!.p) + 0.5 * warpAmp * Math.sin(y * warp[1]!.f + warp[1]!.p));
  const warpOfX = Float64Array.from({ length: side }, (_, x) => warpAmp * Math.sin(x * warp[2]!.f + warp[2]!.p) + 0.5 * warpAmp * Math.sin(x * warp[3]!.f + warp[3]!.p));
  const lightOfX = Float64Array.from({ length: side }, (_, x) => Math.sin(x * shade.fx + shade.p));
  const lightOfY = Float64Array.from({ length: side }, (_, y) => 6 * Math.sin(y * shade.fy));
  const cosOf = regions.map((r) => Math.cos(r.angle));
  const sinOf = regions.map((r) => Math.sin(r.angle));
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const wx = x + warpOfY[y]!;
      const wy = y + warpOfX[x]!;
      let best = 0;
      let bestD = Infinity;
      for (let r = 0; r < regions.length; r++) {
        const dx = wx - regions[r]!.x;
        const dy = wy - regions[r]!.y;
        const d = dx * dx + dy * dy;
        if (d < bestD) {
          bestD = d;
          best = r;
        }
      }
      const region = regions[best]!;
      const t = TISSUES[region.label]!;
      const i = y * side + x;
      classMap[i] = region.label;
      regionMap[i] = best;
      // Texture coordinates rotated into the region's orientation.
      const cos = cosOf[best]!;
      const sin = sinOf[best]!;
      const u = cos * x + sin * y;
      const v = -sin * x + cos * y;
      let r = t.base[0];
      let g = t.base[1];
      let b = t.base[2];
      let dark = 0; // towards haematoxylin
      let pale = 0; // towards white
      if (t.fibres) {
        const phase = (2 * Math.PI * u) / t.fibres.period + t.fibres.wave * Math.sin((2 * Math.PI * v) / (t.fibres.period * 6));
        const s = Math.sin(phase);
        r -= t.fibres.amplitude * 0.4 * s;
        g -= t.fibres.amplitude * s;
        b -= t.fibres.amplitude * 0.5 * s;
      }
      if (t.membranes) {
        // Brick-like cells: alternate columns shifted by half a period.
        const m = Math.max(latticeOffset(u, t.membranes.period), latticeOffset(v + 0.5 * t.membranes.period * Math.floor(u / t.membranes.period), t.membranes.period));
        const edge = 0.5 - m; // in periods, 0 on the membrane
        const w = t.membranes.width / t.membranes.period;
        const a = edge < w ? 1 - edge / w : 0;
        pale = 1 - a;
        r -= 40 * a;
        g -= 70 * a;
        b -= 35 * a;
      }
      if (t.lumens) {
        const p = t.lumens.period;
        const du = (latticeOffset(u + p / 2, p) * p);
        const dv = (latticeOffset(v + p / 2, p) * p);
        const d = Math.sqrt(du * du + dv * dv);
        if (d < t.lumens.radius) pale = 0.8;
        else if (d < t.lumens.radius + t.lumens.rim) dark = 0.55;
      }
      if (t.swirl) {
        const s = Math.sin(u / t.swirl.scale + 2.5 * Math.sin(v / (t.swirl.scale * 1.7)));
        r += t.swirl.amplitude * 0.5 * s;
        g += t.swirl.amplitude * s;
        b += t.swirl.amplitude * 0.3 * s;
      }
      r += (255 - r) * pale * 0.85 + (HEMATOXYLIN[0] - r) * dark;
      g += (255 - g) * pale * 0.85 + (HEMATOXYLIN[1] - g) * dark;
      b += (255 - b) * pale * 0.85 + (HEMATOXYLIN[2] - b) * dark;
      const light = lightOfX[x]! * lightOfY[y]!;
      colour[i * 3] = r + light;
      colour[i * 3 + 1] = g + light;
      colour[i * 3 + 2] = b + light;
    }
  }

  // Nuclei: candidates at the densest tissue's rate, thinned to each region's own density.
  const maxDensity = Math.max(...TISSUES.slice(0, spec.classes).map((t) => t.nuclei?.density ?? 0));
  const candidates = Math.round((maxDensity * n) / 100);
  for (let k = 0; k < candidates; k++) {
    const cx = rng.uniform(0, side);
    const cy = rng.uniform(0, side);
    const keep = rng.next();
    const radiusDraw = rng.next();
    const tilt = rng.uniform(0, Math.PI);
    const ci = Math.min(side - 1, Math.floor(cy)) * side + Math.min(side - 1, Math.floor(cx));
    const region = regions[regionMap[ci]!]!;
    const nuc = TISSUES[region.label]!.nuclei;
    if (!nuc || keep * maxDensity >= nuc.density) continue;
    const radius = nuc.radius[0] + (nuc.radius[1] - nuc.radius[0]) * radiusDraw;
    // Elongated nuclei follow the region's fibre direction (within 0.3 rad); round ones any way.
    const angle = nuc.elongation > 2 ? region.angle + Math.PI / 2 + (tilt - Math.PI / 2) * 0.2 : tilt;
    paintNucleus(colour, side, cx, cy, radius * Math.sqrt(nuc.elongation), radius / Math.sqrt(nuc.elongation), angle, nuc.darkness);
  }

  const pixels = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const bits = rng.nextU32();
    const grain = TISSUES[classMap[i]!]!.grain;
    for (let c = 0; c < 3; c++) {
      const noise = (((bits >>> (c * 10)) & 1023) / 1023 - 0.5) * 2 * grain;
      pixels[i * 3 + c] = clamp255((colour[i * 3 + c]! + noise) * gain[c]! + offset);
    }
  }

  const cells: Slide['cells'] = [];
  const half = spec.patchSize >> 1;
  for (let gy = 0; gy < spec.grid; gy++) {
    for (let gx = 0; gx < spec.grid; gx++) {
      if (rng.bernoulli(spec.gapFraction)) continue;
      const label = classMap[(gy * spec.patchSize + half) * side + gx * spec.patchSize + half]!;
      cells.push({ x: gx, y: gy, label });
    }
  }
  return { name: `${split}-slide-${String(index).padStart(2, '0')}`, side, pixels, classMap, cells };
}

/** An antialiased dark ellipse blended towards the haematoxylin colour. */
function paintNucleus(colour: Float32Array, side: number, cx: number, cy: number, a: number, b: number, angle: number, darkness: number): void {
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const reach = Math.ceil(a + 1);
  const x0 = Math.max(0, Math.floor(cx - reach));
  const x1 = Math.min(side - 1, Math.ceil(cx + reach));
  const y0 = Math.max(0, Math.floor(cy - reach));
  const y1 = Math.min(side - 1, Math.ceil(cy + reach));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - cx;
      const dy = y + 0.5 - cy;
      const u = (cos * dx + sin * dy) / a;
      const v = (-sin * dx + cos * dy) / b;
      // Signed distance approximated in units of the minor radius: one-pixel soft edge.
      const d = (Math.sqrt(u * u + v * v) - 1) * b;
      const cover = d < -0.5 ? 1 : d > 0.5 ? 0 : 0.5 - d;
      if (cover === 0) continue;
      const w = cover * darkness;
      const i = (y * side + x) * 3;
      for (let c = 0; c < 3; c++) colour[i + c] = colour[i + c]! + (HEMATOXYLIN[c]! - colour[i + c]!) * w;
    }
  }
}

/** Copies the patch at grid cell (gx, gy) into out[offset ..]. */
function cutPatch(slide: Slide, patchSize: number, gx: number, gy: number, out: Uint8Array, offset: number): void {
  const row = patchSize * 3;
  for (let y = 0; y < patchSize; y++) {
    const from = ((gy * patchSize + y) * slide.side + gx * patchSize) * 3;
    out.set(slide.pixels.subarray(from, from + row), offset + y * row);
  }
}

/** Patches of some slides as one dataset; groups = slide. */
function patchesOf(slides: readonly Slide[], patchSize: number, labelled: boolean, classNames: readonly string[]) {
  const count = slides.reduce((a, s) => a + s.cells.length, 0);
  const stride = patchSize * patchSize * 3;
  const pixels = new Uint8Array(count * stride);
  const labels = new Int32Array(count);
  const groups = new Int32Array(count);
  const positions: GridPosition[] = [];
  let k = 0;
  slides.forEach((slide, s) => {
    for (const cell of slide.cells) {
      cutPatch(slide, patchSize, cell.x, cell.y, pixels, k * stride);
      labels[k] = labelled ? cell.label : -1;
      groups[k] = s;
      positions.push({ slide: s, x: cell.x, y: cell.y });
      k++;
    }
  });
  const dataset = new ArrayImageDataset(pixels, patchSize, patchSize, labels, labelled ? classNames : [], {
    groups,
    groupNames: slides.map((s) => s.name),
  });
  return { dataset, positions };
}

export interface SyntheticSlides {
  /** Unlabelled patches of the train slides (groups = slide). */
  train: ArrayImageDataset;
  neighbours: ListNeighbourIndex;
  /** Labelled patches of the eval slides (groups = slide). */
  labelled: ArrayImageDataset;
  classNames: readonly string[];
}

export function slideSpec(cfg: SlidesConfig): SlideSpec {
  return { grid: cfg.grid, patchSize: cfg.patch_size, classes: cfg.classes, gapFraction: cfg.gap_fraction };
}

/** `limit` keeps the first train patches (slide by slide, row-major), with their neighbour links among them. */
export function makeSyntheticSlides(cfg: SlidesConfig, seed: number, limit?: number): SyntheticSlides {
  const spec = slideSpec(cfg);
  const classNames = TISSUE_CLASS_NAMES.slice(0, spec.classes);
  const trainSlides = Array.from({ length: cfg.train_slides }, (_, i) => renderSlide(spec, seed, 'train', i));
  const evalSlides = Array.from({ length: cfg.eval_slides }, (_, i) => renderSlide(spec, seed, 'eval', i));
  const all = patchesOf(trainSlides, spec.patchSize, false, classNames);
  const train = limit === undefined || limit >= all.dataset.size ? all.dataset : all.dataset.head(limit);
  const { dataset: labelled } = patchesOf(evalSlides, spec.patchSize, true, classNames);
  return { train, neighbours: gridNeighbourIndex(all.positions.slice(0, train.size), train), labelled, classNames };
}

export interface WrittenSlides {
  /** Unlabelled patches `<slide>_<x>_<y>.png`, x/y in pixels. */
  patchesDir: string;
  /** Labelled patches `<slide>/<class>/<slide>_<x>_<y>.png`. */
  labelledDir: string;
  patches: number;
  labelledPatches: number;
}

/**
 * Writes the slides of `cfg` in the real formats (lossless PNG), so the file loaders (data.kind
 * patches with data.labelled, and folder) can be exercised on data with known structure.
 */
export async function writeSyntheticSlides(dir: string, cfg: SlidesConfig, seed: number): Promise<WrittenSlides> {
  const spec = slideSpec(cfg);
  const classNames = TISSUE_CLASS_NAMES.slice(0, spec.classes);
  const patchesDir = join(dir, 'patches');
  const labelledDir = join(dir, 'labelled');
  const jobs: { path: string; slide: Slide; x: number; y: number }[] = [];
  const folders = new Set<string>([patchesDir]);
  for (let i = 0; i < cfg.train_slides; i++) {
    const slide = renderSlide(spec, seed, 'train', i);
    for (const c of slide.cells) {
      jobs.push({ path: join(patchesDir, `${slide.name}_${c.x * spec.patchSize}_${c.y * spec.patchSize}.png`), slide, x: c.x, y: c.y });
    }
  }
  const patches = jobs.length;
  for (let i = 0; i < cfg.eval_slides; i++) {
    const slide = renderSlide(spec, seed, 'eval', i);
    for (const c of slide.cells) {
      const folder = join(labelledDir, slide.name, classNames[c.label]!);
      folders.add(folder);
      jobs.push({ path: join(folder, `${slide.name}_${c.x * spec.patchSize}_${c.y * spec.patchSize}.png`), slide, x: c.x, y: c.y });
    }
  }
  for (const f of folders) await mkdir(f, { recursive: true });
  const stride = spec.patchSize * spec.patchSize * 3;
  await forEachConcurrent(jobs.length, 8, async (k) => {
    const job = jobs[k]!;
    const buf = new Uint8Array(stride);
    cutPatch(job.slide, spec.patchSize, job.x, job.y, buf, 0);
    const sharp = await loadSharp();
    await sharp(buf, { raw: { width: spec.patchSize, height: spec.patchSize, channels: 3 } }).png({ compressionLevel: 1 }).toFile(job.path);
  });
  return { patchesDir, labelledDir, patches, labelledPatches: jobs.length - patches };
}
