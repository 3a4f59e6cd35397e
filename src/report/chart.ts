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
  /** A line under the title: what the reader must know to read the chart right. */
  subtitle?: string;
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
  /**
   * Try the legend's bottom corners first: for rising curves (accuracies), which end top-right. Either
   * way the legend takes a corner no curve, marker or reference line crosses, else goes below the plot.
   */
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

/**
 * Tick label: as many decimals as the step needs. Exponent form only for an axis whose values are all
 * tiny or huge (`magnitude`: the largest absolute value on the axis); a narrow range of ordinary
 * values (0.1275 to 0.1285) keeps decimals.
 */
export function formatTick(value: number, step: number, magnitude = Math.abs(value)): string {
  if (value === 0) return '0';
  const m = Math.max(magnitude, Math.abs(value));
  if (m < 1e-3 || m >= 1e6) {
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
  const magnitude = Math.max(Math.abs(t.min), Math.abs(t.max));
  return { min: t.min, max: t.max, values: t.values, labels: t.values.map((v) => formatTick(v, t.step, magnitude)) };
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

interface LegendEntry {
  name: string;
  color: string;
  dashed: boolean;
  faint: boolean;
}

/** Where the plot area sits and how data (drawing coordinates) maps into it. */
interface PlotFrame {
  left: number;
  top: number;
  plotW: number;
  plotH: number;
  px(x: number): number;
  py(y: number): number;
}

const LEGEND_ROW = 16;
/** Width of a character of 11 px text, about. */
const CHAR_W = 6.6;
/** Markers sit this far inside the frame at most, so edge points are whole and off the border. */
const MARKER_INSET = 7;

function legendBoxSize(entries: readonly LegendEntry[]): { w: number; h: number } {
  return { w: 34 + Math.max(...entries.map((l) => l.name.length)) * CHAR_W, h: entries.length * LEGEND_ROW + 8 };
}

/**
 * The legend inside the plot, in the first corner (in the preferred order) that no curve, marker or
 * reference line crosses; undefined when every corner is taken, and the legend then goes below.
 */
function freeLegendCorner(
  frame: PlotFrame,
  size: { w: number; h: number },
  runs: ReadonlyArray<readonly Point[]>,
  refYs: readonly number[],
  bottomFirst: boolean,
): { x: number; y: number } | undefined {
  const { left, top, plotW, plotH, px, py } = frame;
  const xs = [left + plotW - size.w - 8, left + 8];
  const ys = bottomFirst ? [top + plotH - size.h - 8, top + 8] : [top + 8, top + plotH - size.h - 8];
  const corners = [
    { x: xs[0]!, y: ys[0]! },
    { x: xs[0]!, y: ys[1]! },
    { x: xs[1]!, y: ys[0]! },
    { x: xs[1]!, y: ys[1]! },
  ];
  const pad = 4;
  return corners.find(({ x, y }) => {
    const inside = (a: number, b: number) => a >= x - pad && a <= x + size.w + pad && b >= y - pad && b <= y + size.h + pad;
    if (refYs.some((r) => py(r) >= y - pad && py(r) <= y + size.h + pad)) return false;
    for (const run of runs) {
      for (let i = 0; i < run.length; i++) {
        const [ax, ay] = [px(run[i]![0]), py(run[i]![1])];
        if (inside(ax, ay)) return false;
        if (i === 0) continue;
        // Samples along the segment from the previous point: a line through the box without a point in it.
        const [bx, by] = [px(run[i - 1]![0]), py(run[i - 1]![1])];
        const n = Math.min(64, Math.ceil(Math.hypot(ax - bx, ay - by) / 4));
        for (let k = 1; k < n; k++) if (inside(bx + ((ax - bx) * k) / n, by + ((ay - by) * k) / n)) return false;
      }
    }
    return true;
  });
}

function legendSvg(entries: readonly LegendEntry[], x: number, y: number, columns: number, colW: number, boxed: boolean): string[] {
  const out: string[] = ['<g>'];
  const rows = Math.ceil(entries.length / columns);
  if (boxed) {
    const { w, h } = legendBoxSize(entries);
    out.push(`<rect x="${fmt(x)}" y="${fmt(y)}" width="${fmt(w)}" height="${h}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb"/>`);
  }
  entries.forEach((l, i) => {
    const ex = x + colW * Math.floor(i / rows);
    const ey = y + 4 + LEGEND_ROW * (i % rows) + LEGEND_ROW / 2;
    const dash = l.dashed ? ' stroke-dasharray="6 4"' : '';
    const opacity = l.faint ? ' stroke-opacity="0.35"' : '';
    out.push(`<line x1="${fmt(ex + 6)}" y1="${fmt(ey)}" x2="${fmt(ex + 26)}" y2="${fmt(ey)}" stroke="${l.color}" stroke-width="2"${dash}${opacity}/>`);
    out.push(`<text x="${fmt(ex + 30)}" y="${fmt(ey)}" dominant-baseline="middle">${escapeXml(l.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

export function lineChartSvg(options: LineChartOptions): string {
  const { title, subtitle, xLabel = '', yLabel = '', referenceLines = [], width = 640, height = 360, integerX = false, logX = false, logY = false } = options;
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
  let [y0, y1] = hasData ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  if (hasData && !logY && refs.length > 0) {
    // A reference line at the edge of the values would sit on the frame: the axis reaches past it.
    const span = y1 - y0 || Math.abs(y1) || 1;
    if (refs.some((r) => r.y <= y0)) y0 -= 0.08 * span;
    if (refs.some((r) => r.y >= y1)) y1 += 0.08 * span;
  }
  const xt = logX ? logAxis(x0, x1) : linearAxis(x0, x1, 6, integerX);
  const yt = logY ? logAxis(y0, y1) : linearAxis(y0, y1, 5, false);

  const order = series.map((s, i) => ({ s, color: s.color ?? PALETTE[i % PALETTE.length]! }));
  const legend: LegendEntry[] = [
    ...order.map(({ s, color }) => ({ name: s.name, color, dashed: false, faint: s.faint === true })),
    ...(hasData ? refs.map((r) => ({ name: r.label, color: '#666666', dashed: true, faint: false })) : []),
  ].filter((l) => l.name);
  const showLegend = legend.length > 0 && (legend.length > 1 || refs.length > 0 || series.length > 1);
  const inset = series.some((s) => s.markers) ? MARKER_INSET : 0;

  // Left margin grows with the longest y tick label (about 7 px per character at 11 px).
  const left = 30 + Math.max(...yt.labels.map((l) => l.length)) * 7 + (yLabel ? 14 : 0);
  const top = (title ? 34 : 14) + (subtitle ? 20 : 0);
  const frameFor = (below: number): PlotFrame => {
    const bottom = 44 + (xLabel ? 6 : 0) + below;
    const plotW = Math.max(10, width - left - 18);
    const plotH = Math.max(10, height - top - bottom);
    return {
      left,
      top,
      plotW,
      plotH,
      px: (x) => left + inset + ((x - xt.min) / (xt.max - xt.min)) * (plotW - 2 * inset),
      py: (y) => top + plotH - inset - ((y - yt.min) / (yt.max - yt.min)) * (plotH - 2 * inset),
    };
  };
  let frame = frameFor(0);
  let corner: { x: number; y: number } | undefined;
  let below: { columns: number; colW: number; rows: number } | undefined;
  if (showLegend) {
    const runs = series.flatMap((s) => finiteRuns(s.points));
    corner = freeLegendCorner(frame, legendBoxSize(legend), runs, hasData ? refs.map((r) => r.y) : [], options.legendBottom === true);
    if (!corner) {
      const colW = 40 + Math.max(...legend.map((l) => l.name.length)) * CHAR_W;
      const columns = Math.max(1, Math.min(legend.length, Math.floor((width - left - 18) / colW)));
      const rows = Math.ceil(legend.length / columns);
      below = { columns, colW, rows };
      frame = frameFor(rows * LEGEND_ROW + 8);
    }
  }
  const { plotW, plotH, px, py } = frame;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<clipPath id="plot-area"><rect x="${left}" y="${top}" width="${plotW}" height="${plotH}"/></clipPath>`);
  if (title) out.push(`<text x="${fmt(width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  if (subtitle) out.push(`<text x="${fmt(width / 2)}" y="${title ? 38 : 20}" text-anchor="middle" fill="#444444">${escapeXml(subtitle)}</text>`);

  // Grid and ticks.
  for (const [i, v] of yt.values.entries()) {
    const y = fmt(py(v));
    out.push(`<line x1="${left}" y1="${y}" x2="${left + plotW}" y2="${y}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#333333">${escapeXml(yt.labels[i]!)}</text>`);
  }
  for (const [i, v] of xt.values.entries()) {
    const x = fmt(px(v));
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${top + plotH}" stroke="#e6e6e6"/>`);
    out.push(`<text x="${x}" y="${top + plotH + 16}" text-anchor="middle" fill="#333333">${escapeXml(xt.labels[i]!)}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#555555"/>`);
  if (xLabel) out.push(`<text x="${fmt(left + plotW / 2)}" y="${top + plotH + 42}" text-anchor="middle" font-size="12">${escapeXml(xLabel)}</text>`);
  if (yLabel) {
    const cy = fmt(top + plotH / 2);
    out.push(`<text x="14" y="${cy}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${cy})">${escapeXml(yLabel)}</text>`);
  }
  if (!hasData) {
    out.push(`<text x="${fmt(left + plotW / 2)}" y="${fmt(top + plotH / 2)}" text-anchor="middle" fill="#888888" font-size="13">no data</text>`);
  }

  // Curves, faint ones first so they sit underneath.
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
  if (corner) out.push(...legendSvg(legend, corner.x, corner.y, 1, 0, true));
  if (below) out.push(...legendSvg(legend, left, top + plotH + 44 + (xLabel ? 6 : 0), below.columns, below.colW, false));
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
