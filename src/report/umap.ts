/**
 * What the features look like: a 2-D UMAP (umap-js, seeded) of an encoder's features, one point per
 * image, coloured by class with a legend of class names and counts; where the data has groups
 * (slides, patients), a second panel of the same points coloured by group, which shows whether the
 * encoder learned the slide rather than the tissue.
 *
 * Features are L2-normalised first, so UMAP's Euclidean distances rank neighbours as the cosine
 * similarity of the kNN probe does.
 */
import { UMAP } from 'umap-js';
import { Rng } from '../util/rng.js';
import { escapeXml, PALETTE } from './chart.js';
import type { Chart } from './run_report.js';

export interface UmapInput {
  /** N x dim, row-major. */
  features: Float32Array;
  dim: number;
  /** Class of each row; -1 for unlabelled. */
  labels: Int32Array;
  classNames: readonly string[];
  /** Group of each row (slide, patient) and the groups' names: adds the second panel. */
  groups?: Int32Array;
  groupNames?: readonly string[];
  /** What a group is, for the second panel's title and legend ("slide"). Default "group". */
  groupTitle?: string;
  seed: number;
  /** At most this many points (a seeded sample beyond). Default 2000. */
  maxPoints?: number;
  /** UMAP's optimisation epochs. Default 200. */
  epochs?: number;
  /** Chart title; default "UMAP of the features". */
  title?: string;
}

export interface UmapResult {
  chart: Chart;
  /** The rows plotted (all, or the seeded sample), and their 2-D positions. */
  rows: Int32Array;
  positions: Float32Array;
  /** The colour of each class and group, as drawn in the points and the legends. */
  classColors: string[];
  groupColors: string[];
}

/** More colours than the palette has: the palette, then further distinct hues (golden-angle steps). */
export function categoricalColors(n: number): string[] {
  const extra = ['#882255', '#44aa99', '#999933', '#332288', '#aa4499', '#117733', '#88ccee', '#ddcc77', '#661100', '#6699cc', '#aa4466', '#4477aa', '#228833'];
  const base = [...PALETTE, ...extra];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i < base.length) {
      out.push(base[i]!);
      continue;
    }
    const hue = (i * 137.508) % 360;
    const l = i % 2 ? 0.38 : 0.55;
    const c = (1 - Math.abs(2 * l - 1)) * 0.75;
    const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
    const [r, g, b] = hue < 60 ? [c, x, 0] : hue < 120 ? [x, c, 0] : hue < 180 ? [0, c, x] : hue < 240 ? [0, x, c] : hue < 300 ? [x, 0, c] : [c, 0, x];
    const m = l - c / 2;
    out.push(`#${[r, g, b].map((v) => Math.round((v + m) * 255).toString(16).padStart(2, '0')).join('')}`);
  }
  return out;
}

/** The rows to plot: all, or `max` of them drawn with the seed (in row order). */
export function sampleRows(n: number, max: number, seed: number): Int32Array {
  if (n <= max) return Int32Array.from({ length: n }, (_, i) => i);
  return new Rng(seed, 'umap-sample').permutation(n).subarray(0, max).sort();
}

/** The seeded 2-D UMAP of the given rows' L2-normalised features: [x0, y0, x1, y1, ...]. */
export function umapLayout(features: Float32Array, dim: number, rows: Int32Array, seed: number, epochs = 200): Float32Array {
  const data = Array.from(rows, (r) => {
    const v = Array.from(features.subarray(r * dim, (r + 1) * dim));
    const norm = Math.hypot(...v) || 1;
    return v.map((x) => x / norm);
  });
  const out = new Float32Array(rows.length * 2);
  // UMAP needs more points than neighbours; a handful of points are simply placed on a circle.
  if (rows.length < 4) {
    rows.forEach((_, i) => {
      out[2 * i] = Math.cos((2 * Math.PI * i) / rows.length);
      out[2 * i + 1] = Math.sin((2 * Math.PI * i) / rows.length);
    });
    return out;
  }
  const rng = new Rng(seed, 'umap');
  const umap = new UMAP({ nComponents: 2, nNeighbors: Math.min(15, rows.length - 1), minDist: 0.1, nEpochs: epochs, random: () => rng.next() });
  umap.fit(data).forEach(([x, y], i) => {
    out[2 * i] = x!;
    out[2 * i + 1] = y!;
  });
  return out;
}

const PANEL = 380;
const LEGEND_W = 190;
const fmt = (v: number): string => String(Math.round(v * 100) / 100);

interface Panel {
  title: string;
  /** Category of each plotted point; -1 draws grey (unlabelled). */
  category: (i: number) => number;
  names: readonly string[];
  colors: readonly string[];
}

/** One square panel of points with its legend to the right, at (x0, y0). */
function panelSvg(panel: Panel, positions: Float32Array, order: Int32Array, x0: number, y0: number): string[] {
  const n = positions.length / 2;
  const xs = Array.from({ length: n }, (_, i) => positions[2 * i]!);
  const ys = Array.from({ length: n }, (_, i) => positions[2 * i + 1]!);
  const [xMin, xMax, yMin, yMax] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(xMax - xMin, yMax - yMin) || 1;
  // Same scale on both axes (UMAP distances have no direction); 12 px margin so no point touches the frame.
  const inner = PANEL - 24;
  const px = (x: number) => x0 + 12 + ((x - (xMin + xMax) / 2) / span) * inner + inner / 2;
  const py = (y: number) => y0 + 12 + inner / 2 - ((y - (yMin + yMax) / 2) / span) * inner;
  const out: string[] = [];
  out.push(`<text x="${fmt(x0 + PANEL / 2)}" y="${y0 - 8}" text-anchor="middle" font-size="12" font-weight="bold">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${x0}" y="${y0}" width="${PANEL}" height="${PANEL}" fill="none" stroke="#555555"/>`);
  out.push('<g stroke="#ffffff" stroke-width="0.4">');
  for (const i of order) {
    const c = panel.category(i);
    const fill = c >= 0 ? panel.colors[c]! : '#bbbbbb';
    out.push(`<circle cx="${fmt(px(xs[i]!))}" cy="${fmt(py(ys[i]!))}" r="3" fill="${fill}"/>`);
  }
  out.push('</g>');
  // Legend: a swatch, the name and the number of points, per category present.
  const counts = new Array<number>(panel.names.length).fill(0);
  for (let i = 0; i < n; i++) if (panel.category(i) >= 0) counts[panel.category(i)]!++;
  const shown = panel.names.map((name, c) => ({ name, c, count: counts[c]! })).filter((e) => e.count > 0);
  const rowH = 16;
  const maxRows = Math.floor(PANEL / rowH);
  const listed = shown.length > maxRows ? shown.slice(0, maxRows - 1) : shown;
  listed.forEach((e, k) => {
    const y = y0 + 6 + k * rowH;
    out.push(`<rect x="${x0 + PANEL + 12}" y="${y}" width="11" height="11" fill="${panel.colors[e.c]}"/>`);
    const label = e.name.length > 22 ? `${e.name.slice(0, 21)}…` : e.name;
    out.push(`<text x="${x0 + PANEL + 28}" y="${y + 6}" dominant-baseline="middle">${escapeXml(`${label} (${e.count})`)}</text>`);
  });
  if (listed.length < shown.length) {
    out.push(`<text x="${x0 + PANEL + 12}" y="${y0 + 6 + listed.length * rowH + 6}" dominant-baseline="middle" fill="#555555">${escapeXml(`+${shown.length - listed.length} more`)}</text>`);
  }
  return out;
}

/** The UMAP chart (see the module comment): SVG for writeChart, and what it drew, for the tests. */
export function umapChart(input: UmapInput): UmapResult {
  const n = input.features.length / input.dim;
  if (!Number.isInteger(n) || n !== input.labels.length) throw new RangeError(`UMAP: ${input.features.length} values are not ${input.labels.length} x ${input.dim}`);
  const rows = sampleRows(n, input.maxPoints ?? 2000, input.seed);
  const positions = umapLayout(input.features, input.dim, rows, input.seed, input.epochs);
  const classColors = categoricalColors(input.classNames.length);
  const grouped = input.groups !== undefined && input.groupNames !== undefined && input.groupNames.length >= 2;
  const groupColors = grouped ? categoricalColors(input.groupNames!.length) : [];
  // Points in a seeded order, so no class is always drawn on top of the others.
  const order = new Rng(input.seed, 'umap-order').permutation(rows.length);
  const panels: Panel[] = [{ title: 'coloured by class', category: (i) => input.labels[rows[i]!]!, names: input.classNames, colors: classColors }];
  if (grouped) {
    const what = input.groupTitle ?? 'group';
    panels.push({ title: `coloured by ${what}`, category: (i) => input.groups![rows[i]!]!, names: input.groupNames!, colors: groupColors });
  }
  const title = input.title ?? 'UMAP of the features';
  const top = 56;
  const width = panels.length * (PANEL + LEGEND_W + 24) + 24;
  const height = top + PANEL + 40;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${fmt(width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  panels.forEach((p, k) => out.push(...panelSvg(p, positions, order, 24 + k * (PANEL + LEGEND_W + 24), top)));
  const sampled = rows.length < n ? `${rows.length} of ${n} points (seeded sample)` : `${n} points`;
  out.push(
    `<text x="24" y="${height - 14}" fill="#444444">${escapeXml(`${sampled}; L2-normalised features, UMAP (${Math.min(15, Math.max(1, rows.length - 1))} neighbours, min_dist 0.1, seed ${input.seed}); axes have no units.`)}</text>`,
  );
  out.push('</svg>');
  return { chart: { name: 'umap', title, svg: `${out.join('\n')}\n` }, rows, positions, classColors, groupColors };
}
