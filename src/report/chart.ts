/**
 * Line charts as standalone SVG: viewable in any browser, diffable as text, and rendered to PNG by
 * sharp for the run reports, with no plotting dependency.
 */

export type Point = readonly [number, number];

export interface Series {
  name: string;
  points: readonly Point[];
  color?: string;
  /** Drawn thinner and lighter, behind the others (raw values under a smoothed curve). */
  faint?: boolean;
  /** A dot at every point, unclipped so edge points stay whole: for a few measured values (label fractions). */
  markers?: boolean;
}

export interface ReferenceLine {
  y: number;
  label: string;
}

export interface LineChartOptions {
  title: string;
  xLabel?: string;
  yLabel?: string;
  series: readonly Series[];
  /** Horizontal dashed lines across the plot; included in the y range. */
  referenceLines?: readonly ReferenceLine[];
  width?: number;
  height?: number;
  /** Only whole-number x ticks (steps, epochs). */
  integerX?: boolean;
  /** Logarithmic axes (label fractions, loss scale); values <= 0 cannot be drawn there and become gaps. */
  logX?: boolean;
  logY?: boolean;
  /** Values the y axis must show whatever the data (e.g. 0 and 1 for scores, so runs compare by eye). */
  includeY?: readonly number[];
  /** Legend in the bottom-right corner: for rising curves (accuracies), which end in the top-right one. */
  legendBottom?: boolean;
}

// Colour-blind-friendly qualitative palette (Okabe-Ito order), dark enough on white.
export const PALETTE = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000'];

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** The 1, 2 or 5 x 10^k closest above `raw`, so tick labels stay short and round. */
export function niceStep(raw: number): number {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const f = raw / magnitude;
  // A tolerance so that a raw step that is already nice (0.2 computed as 0.19999999) stays itself.
  const nice = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
  return nice * magnitude;
}

export interface Ticks {
  /** Axis range, widened outwards to whole steps. */
  min: number;
  max: number;
  step: number;
  values: number[];
}

/**
 * Round tick values covering [min, max] with at most about `target` intervals. A zero-width range
 * is widened around its value, since a flat line still needs an axis.
 */
export function niceTicks(min: number, max: number, target = 5, integer = false): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = 0;
    max = 1;
  }
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  let step = niceStep((max - min) / Math.max(1, target));
  if (integer) step = Math.max(1, step);
  const lo = Math.floor(min / step + 1e-9);
  const hi = Math.ceil(max / step - 1e-9);
  // Fixed to the step's decimals so 0.1 * 3 prints as 0.3, not 0.30000000000000004.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  const clean = (v: number): number => Number(v.toFixed(Math.min(20, decimals)));
  const values: number[] = [];
  for (let i = lo; i <= hi; i++) values.push(clean(i * step));
  return { min: clean(lo * step), max: clean(hi * step), step, values };
}

/** Tick label: as few digits as the step needs; exponent form for very small or large values. */
export function formatTick(value: number, step: number): string {
  if (value === 0) return '0';
  const a = Math.max(Math.abs(value), step);
  if (step < 1e-3 || a >= 1e6) {
    const digits = Math.max(0, Math.floor(Math.log10(Math.abs(value))) - Math.floor(Math.log10(step)));
    const [mantissa, exponent] = value.toExponential(Math.min(digits, 6)).split('e');
    return `${String(Number(mantissa))}e${exponent!.replace('+', '')}`;
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return value.toFixed(decimals);
}

/** Splits at non-finite points: a NaN loss is a gap in the curve, not a jump to some value. */
export function finiteRuns(points: readonly Point[]): Point[][] {
  const runs: Point[][] = [];
  let run: Point[] = [];
  for (const p of points) {
    if (Number.isFinite(p[0]) && Number.isFinite(p[1])) run.push(p);
    else if (run.length) {
      runs.push(run);
      run = [];
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

/**
 * Keeps, per pixel column, the first, lowest, highest and last point: the drawn envelope is the
 * same, but a 100k-step run does not make a multi-megabyte file.
 */
function decimate(run: readonly Point[], toPx: (x: number) => number, columns: number): readonly Point[] {
  if (run.length <= 4 * columns) return run;
  const out: Point[] = [];
  let i = 0;
  while (i < run.length) {
    const column = Math.floor(toPx(run[i]![0]));
    let j = i;
    let lo = i;
    let hi = i;
    while (j + 1 < run.length && Math.floor(toPx(run[j + 1]![0])) === column) {
      j++;
      if (run[j]![1] < run[lo]![1]) lo = j;
      if (run[j]![1] > run[hi]![1]) hi = j;
    }
    for (const k of [...new Set([i, lo, hi, j])].sort((a, b) => a - b)) out.push(run[k]!);
    i = j + 1;
  }
  return out;
}

const fmt = (v: number): string => String(Math.round(v * 100) / 100);

/** An axis in drawing coordinates (log10 of the value on a log axis): its range and labelled ticks. */
export interface Axis {
  min: number;
  max: number;
  values: number[];
  labels: string[];
}

function linearAxis(min: number, max: number, target: number, integer: boolean): Axis {
  const t = niceTicks(min, max, target, integer);
  return { min: t.min, max: t.max, values: t.values, labels: t.values.map((v) => formatTick(v, t.step)) };
}

/** A value of 10^k, 2 x 10^k or 5 x 10^k written briefly: 0.01, 0.2, 500, 1e5. */
function formatLogTick(value: number): string {
  if (value >= 1e5 || value < 1e-3) return value.toExponential().replace('e+', 'e');
  return String(Number(value.toPrecision(6)));
}

/**
 * Log axis over [lo, hi] given as log10 values: whole decades, widened outwards, plus 2 and 5 within
 * each decade when the range spans at most two decades (otherwise too few ticks to read).
 */
export function logAxis(lo: number, hi: number): Axis {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  let min = Math.floor(lo + 1e-9);
  let max = Math.ceil(hi - 1e-9) + 0; // + 0 turns Math.ceil's -0 into 0
  // A single power of ten gets the decade below it: label fractions end at 1, so that is where the data is.
  if (max <= min) min = max - 1;
  const values: number[] = [];
  const mantissas = max - min <= 2 ? [1, 2, 5] : [1];
  for (let k = min; k <= max; k++) {
    for (const m of mantissas) {
      const v = Math.log10(m) + k;
      if (v <= max + 1e-9) values.push(v);
    }
  }
  return { min, max, values, labels: values.map((v) => formatLogTick(Number((10 ** v).toPrecision(6)))) };
}

/** log10 of positive values; anything else cannot sit on a log axis. */
const toLog = (v: number): number => (v > 0 ? Math.log10(v) : Number.NaN);

export function lineChartSvg(options: LineChartOptions): string {
  const { title, xLabel = '', yLabel = '', referenceLines = [], width = 640, height = 360, integerX = false, logX = false, logY = false } = options;
  // Everything below works in drawing coordinates: log axes take log10 of the values first.
  const series = options.series.map((s) => ({
    ...s,
    points: s.points.map(([x, y]) => [logX ? toLog(x) : x, logY ? toLog(y) : y] as const),
  }));
  const finite = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])));
  const refs = referenceLines.map((r) => ({ ...r, y: logY ? toLog(r.y) : r.y })).filter((r) => Number.isFinite(r.y));
  const hasData = finite.length > 0;
  const xs = finite.map((p) => p[0]);
  const included = (options.includeY ?? []).map((y) => (logY ? toLog(y) : y)).filter(Number.isFinite);
  const ys = [...finite.map((p) => p[1]), ...(hasData ? [...refs.map((r) => r.y), ...included] : [])];
  const [x0, x1] = hasData ? [Math.min(...xs), Math.max(...xs)] : [0, 1];
  const [y0, y1] = hasData ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  const xt = logX ? logAxis(x0, x1) : linearAxis(x0, x1, 6, integerX);
  const yt = logY ? logAxis(y0, y1) : linearAxis(y0, y1, 5, false);

  const yLabels = yt.labels;
  // Left margin grows with the longest y tick label (about 7 px per character at 11 px).
  const left = 30 + Math.max(...yLabels.map((l) => l.length)) * 7 + (yLabel ? 14 : 0);
  const top = title ? 34 : 14;
  const right = 18;
  const bottom = 44 + (xLabel ? 6 : 0);
  const plotW = Math.max(10, width - left - right);
  const plotH = Math.max(10, height - top - bottom);
  const px = (x: number): number => left + ((x - xt.min) / (xt.max - xt.min)) * plotW;
  const py = (y: number): number => top + plotH - ((y - yt.min) / (yt.max - yt.min)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<clipPath id="plot-area"><rect x="${left}" y="${top}" width="${plotW}" height="${plotH}"/></clipPath>`);
  if (title) out.push(`<text x="${fmt(width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);

  // Grid and ticks.
  for (const [i, v] of yt.values.entries()) {
    const y = fmt(py(v));
    out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#333333">${escapeXml(yLabels[i]!)}</text>`);
  }
  for (const [i, v] of xt.values.entries()) {
    const x = fmt(px(v));
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" fill="#333333">${escapeXml(xt.labels[i]!)}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#555555"/>`);
  if (xLabel) out.push(`<text x="${fmt(left + plotW / 2)}" y="${height - 8}" text-anchor="middle" font-size="12">${escapeXml(xLabel)}</text>`);
  if (yLabel) {
    const cy = fmt(top + plotH / 2);
    out.push(`<text x="14" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${cy})">${escapeXml(yLabel)}</text>`);
  }
  if (!hasData) {
    out.push(`<text x="${fmt(left + plotW / 2)}" y="${fmt(top + plotH / 2)}" text-anchor="middle" fill="#888888" font-size="13">no data</text>`);
  }

  // Curves, faint ones first so they sit underneath.
  const legend: Array<{ name: string; color: string; dashed: boolean; faint: boolean }> = [];
  const order = series.map((s, i) => ({ s, color: s.color ?? PALETTE[i % PALETTE.length]! }));
  const drawOrder = [...order.filter((o) => o.s.faint), ...order.filter((o) => !o.s.faint)];
  out.push(`<g clip-path="url(#plot-area)" fill="none" stroke-linejoin="round" stroke-linecap="round">`);
  if (hasData) {
    for (const r of refs) {
      const y = fmt(py(r.y));
      out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#666666" stroke-width="1.2" stroke-dasharray="6 4"/>`);
    }
  }
  for (const { s, color } of drawOrder) {
    const style = s.faint ? `stroke="${color}" stroke-width="1" stroke-opacity="0.35"` : `stroke="${color}" stroke-width="1.8"`;
    for (const run of finiteRuns(s.points)) {
      if (run.length === 1) {
        // A one-point polyline draws nothing, so an isolated value gets a dot (unless markers give it one).
        if (!s.markers) out.push(`<circle cx="${fmt(px(run[0]![0]))}" cy="${fmt(py(run[0]![1]))}" r="2.5" fill="${color}" stroke="none"/>`);
        continue;
      }
      const pts = decimate(run, px, plotW)
        .map((p) => `${fmt(px(p[0]))},${fmt(py(p[1]))}`)
        .join(' ');
      out.push(`<polyline points="${pts}" ${style}/>`);
    }
  }
  out.push('</g>');
  for (const { s, color } of drawOrder.filter((o) => o.s.markers)) {
    for (const run of finiteRuns(s.points)) {
      for (const p of run) out.push(`<circle cx="${fmt(px(p[0]))}" cy="${fmt(py(p[1]))}" r="3.5" fill="${color}" stroke="#ffffff"/>`);
    }
  }
  for (const { s, color } of order) legend.push({ name: s.name, color, dashed: false, faint: s.faint === true });
  if (hasData) for (const r of refs) legend.push({ name: r.label, color: '#666666', dashed: true, faint: false });

  // Legend box in the top-right (or bottom-right) corner of the plot area.
  const shown = legend.filter((l) => l.name);
  if (shown.length > 0 && (shown.length > 1 || refs.length > 0 || series.length > 1)) {
    const rowH = 16;
    const boxW = 34 + Math.max(...shown.map((l) => l.name.length)) * 6.6;
    const boxH = shown.length * rowH + 8;
    const bx = left + plotW - boxW - 8;
    const by = options.legendBottom ? top + plotH - boxH - 8 : top + 8;
    out.push(`<g><rect x="${fmt(bx)}" y="${by}" width="${fmt(boxW)}" height="${boxH}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>`);
    shown.forEach((l, i) => {
      const y = by + 4 + rowH * i + rowH / 2;
      const dash = l.dashed ? ' stroke-dasharray="6 4"' : '';
      const opacity = l.faint ? ' stroke-opacity="0.35"' : '';
      out.push(`<line x1="${fmt(bx + 6)}" y1="${y}" x2="${fmt(bx + 26)}" y2="${y}" stroke="${l.color}" stroke-width="2"${dash}${opacity}/>`);
      out.push(`<text x="${fmt(bx + 30)}" y="${y}" dominant-baseline="middle">${escapeXml(l.name)}</text>`);
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * Centred moving average over up to 2 h + 1 neighbours, for a readable trend through a noisy
 * per-step loss. Centred, unlike an exponential average, so the trend does not lag behind the data.
 * Averages stay within a run of finite values: a gap stays a gap.
 */
export function smoothSeries(points: readonly Point[], halfWindow: number): Point[] {
  const h = Math.max(0, Math.floor(halfWindow));
  const out: Point[] = points.map(([x, y]) => [x, y]);
  let i = 0;
  while (i < points.length) {
    if (!Number.isFinite(points[i]![1])) {
      i++;
      continue;
    }
    let end = i;
    while (end < points.length && Number.isFinite(points[end]![1])) end++;
    const prefix = new Float64Array(end - i + 1);
    for (let j = i; j < end; j++) prefix[j - i + 1] = prefix[j - i]! + points[j]![1];
    for (let j = i; j < end; j++) {
      const lo = Math.max(i, j - h);
      const hi = Math.min(end - 1, j + h);
      out[j] = [points[j]![0], (prefix[hi - i + 1]! - prefix[lo - i]!) / (hi - lo + 1)];
    }
    i = end;
  }
  return out;
}
