import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  escapeXml,
  finiteRuns,
  formatTick,
  lineChartSvg,
  niceStep,
  niceTicks,
  smoothSeries,
  writeRunPlots,
} from '../../src/report/plot.js';
import { InputFileError } from '../../src/util/errors.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'simtrip-plot-'));
  dirs.push(d);
  return d;
}

/**
 * A strict-enough XML check: every tag closes in order, attribute values are quoted, and text and
 * attributes hold no raw '<' or bare '&'. Returns the element names in document order.
 */
function checkXml(svg: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  const badAmp = /&(?!(amp|lt|gt|quot|apos|#\d+);)/;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < svg.length) {
    const lt = svg.indexOf('<', i);
    const text = svg.slice(i, lt === -1 ? svg.length : lt);
    if (badAmp.test(text) || text.includes('>')) throw new Error(`bad text: ${text}`);
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(svg);
    if (!m) throw new Error(`malformed tag at ${lt}: ${svg.slice(lt, lt + 60)}`);
    const [whole, closing, name, attrs, selfClosing] = m;
    if (badAmp.test(attrs!)) throw new Error(`bad attribute: ${attrs}`);
    if (closing) {
      if (stack.pop() !== name) throw new Error(`unbalanced </${name}>`);
    } else {
      names.push(name!);
      if (!selfClosing) stack.push(name!);
    }
    i = lt + whole.length;
  }
  if (stack.length) throw new Error(`unclosed: ${stack.join(', ')}`);
  return names;
}

/** Point lists of every polyline. */
function polylines(svg: string): Array<Array<[number, number]>> {
  return [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) =>
    m[1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]),
  );
}

describe('ticks', () => {
  it('niceStep picks 1, 2 or 5 x 10^k at or above the raw step', () => {
    expect(niceStep(0.13)).toBeCloseTo(0.2, 12);
    expect(niceStep(0.2)).toBeCloseTo(0.2, 12);
    expect(niceStep(3)).toBe(5);
    expect(niceStep(7)).toBe(10);
    expect(niceStep(1)).toBe(1);
    expect(niceStep(1200)).toBe(2000);
    expect(niceStep(0.00042)).toBeCloseTo(0.0005, 15);
  });

  it('covers the data with round values', () => {
    expect(niceTicks(0, 10, 5).values).toEqual([0, 2, 4, 6, 8, 10]);
    const t = niceTicks(-0.93, -0.12, 5);
    expect(t.values).toEqual([-1, -0.8, -0.6, -0.4, -0.2, 0]);
    expect([t.min, t.max, t.step]).toEqual([-1, 0, 0.2]);
    // No float dust (0.30000000000000004) in the values.
    expect(niceTicks(0, 0.7, 7).values).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]);
    expect(niceTicks(1, 3, 6, true).values).toEqual([1, 2, 3]);
    expect(niceTicks(1, 3, 6).values).toContain(1.5);
  });

  it('widens a flat or empty range', () => {
    const flat = niceTicks(0.05, 0.05);
    expect(flat.min).toBeLessThan(0.05);
    expect(flat.max).toBeGreaterThan(0.05);
    expect(niceTicks(0, 0).values.length).toBeGreaterThanOrEqual(2);
    expect(niceTicks(Number.NaN, Number.NaN).values).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });

  it('formats labels with the step\'s decimals, exponents for tiny steps', () => {
    expect(formatTick(0.4, 0.2)).toBe('0.4');
    expect(formatTick(2, 0.5)).toBe('2.0');
    expect(formatTick(2000, 500)).toBe('2000');
    expect(formatTick(0, 0.2)).toBe('0');
    expect(formatTick(1.5e-5, 5e-6)).toBe('1.5e-5');
  });
});

describe('lineChartSvg', () => {
  const chart = (series: Parameters<typeof lineChartSvg>[0]['series'], extra = {}) =>
    lineChartSvg({ title: 'Loss', xLabel: 'step', yLabel: 'loss', series, ...extra });

  it('is well-formed SVG with one polyline per series holding every point, axes, grid and legend', () => {
    const svg = chart([
      { name: 'train', points: [[0, 1], [1, 0.5], [2, 0.25], [3, 0.2], [4, 0.1]] },
      { name: 'val', points: [[0, 1.2], [2, 0.4], [4, 0.3]] },
    ]);
    const names = checkXml(svg);
    expect(names[0]).toBe('svg');
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    const lines = polylines(svg);
    expect(lines.map((l) => l.length)).toEqual([5, 3]);
    // Inside the 640 x 360 canvas, x increasing, y decreasing as loss falls (SVG y points down).
    for (const [x, y] of lines.flat()) {
      expect(x).toBeGreaterThan(0);
      expect(x).toBeLessThan(640);
      expect(y).toBeGreaterThan(0);
      expect(y).toBeLessThan(360);
    }
    expect(lines[0]![1]![0]).toBeGreaterThan(lines[0]![0]![0]);
    expect(lines[0]![1]![1]).toBeGreaterThan(lines[0]![0]![1]);
    expect(svg).toContain('>train</text>');
    expect(svg).toContain('>val</text>');
    expect(svg).toContain('>step</text>');
    expect(svg.match(/<line /g)!.length).toBeGreaterThan(8); // grid lines
  });

  it('maps data to pixels linearly: equal steps in x give equal pixel steps', () => {
    const [line] = polylines(chart([{ name: 'a', points: [[0, 0], [1, 1], [2, 2], [3, 3]] }], { width: 500, height: 300 }));
    const dx = line!.slice(1).map((p, i) => p[0] - line![i]![0]);
    const dy = line!.slice(1).map((p, i) => p[1] - line![i]![1]);
    for (const d of dx) expect(d).toBeCloseTo(dx[0]!, 1);
    for (const d of dy) expect(d).toBeCloseTo(dy[0]!, 1);
    expect(dy[0]!).toBeLessThan(0);
  });

  it('leaves gaps at NaN and infinite values, and dots isolated points', () => {
    expect(finiteRuns([[0, 1], [1, Number.NaN], [2, 3], [3, 4], [4, Number.POSITIVE_INFINITY], [5, 6]]).map((r) => r.length)).toEqual([1, 2, 1]);
    const svg = chart([{ name: 'loss', points: [[0, 1], [1, 0.9], [2, Number.NaN], [3, 0.7], [4, 0.6], [5, 0.5], [6, Number.NEGATIVE_INFINITY], [7, 0.4]] }]);
    checkXml(svg);
    expect(polylines(svg).map((l) => l.length)).toEqual([2, 3]);
    expect(svg.match(/<circle /g)).toHaveLength(1);
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('handles a single point, an empty series and no series at all', () => {
    const one = chart([{ name: 'x', points: [[5, 0.3]] }]);
    checkXml(one);
    expect(polylines(one)).toHaveLength(0);
    expect(one.match(/<circle /g)).toHaveLength(1);
    expect(one).not.toMatch(/NaN|Infinity/);
    for (const svg of [chart([{ name: 'x', points: [] }]), chart([]), chart([{ name: 'x', points: [[Number.NaN, 1]] }])]) {
      checkXml(svg);
      expect(svg).toContain('no data');
      expect(svg).not.toMatch(/NaN|Infinity/);
    }
  });

  it('escapes text', () => {
    expect(escapeXml(`a<b & "c" 'd'>`)).toBe('a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;');
    const svg = lineChartSvg({ title: 'loss < 0 & falling', xLabel: 'x<1>', series: [{ name: 'a&b', points: [[0, 1], [1, 2]] }, { name: '<c>', points: [[0, 2], [1, 1]] }] });
    checkXml(svg);
    expect(svg).toContain('loss &lt; 0 &amp; falling');
    expect(svg).toContain('a&amp;b');
    expect(svg).not.toContain('<c>');
  });

  it('draws a dashed reference line inside the y range and names it in the legend', () => {
    const svg = chart([{ name: 'std', points: [[0, 0.001], [10, 0.002]] }], { referenceLines: [{ y: 0.0221, label: '1/sqrt(2048)' }] });
    checkXml(svg);
    expect(svg).toMatch(/<line [^>]*stroke-dasharray/);
    expect(svg).toContain('1/sqrt(2048)');
    expect(svg).toMatch(/>0\.025</); // the axis grew to include 0.0221
  });

  it('thins a very long series per pixel column but keeps its extremes', () => {
    const points: Array<[number, number]> = Array.from({ length: 50_000 }, (_, i) => [i, Math.sin(i / 500) + (i === 31_337 ? 5 : 0)]);
    const svg = chart([{ name: 'loss', points }]);
    const [line] = polylines(svg);
    expect(line!.length).toBeLessThan(4 * 640);
    // The one-step spike (+5 over a sine of amplitude 1) survives thinning, far above everything else.
    const ys = line!.map((p) => p[1]).sort((a, b) => a - b);
    expect(ys[1]! - ys[0]!).toBeGreaterThan(100);
    expect(svg.length).toBeLessThan(100_000);
  });
});

describe('smoothSeries', () => {
  it('averages a centred window, shrinking it at the ends of each finite run', () => {
    const out = smoothSeries([[0, 1], [1, 2], [2, 6], [3, Number.NaN], [4, 10], [5, 20]], 1);
    expect(out.map((p) => p[0])).toEqual([0, 1, 2, 3, 4, 5]);
    expect(out.map((p) => p[1])).toEqual([1.5, 3, 4, Number.NaN, 15, 15]);
    // A centred average of a straight line is the line itself: no lag.
    const line = smoothSeries(Array.from({ length: 20 }, (_, i) => [i, 2 * i] as const), 3);
    for (const [x, y] of line.slice(3, 17)) expect(y).toBeCloseTo(2 * x, 12);
  });
});

describe('writeRunPlots', () => {
  const metrics = [
    { kind: 'train', step: 10, epoch: 1, loss: -0.2, lr: 0.05, collapse_std: 0.02, img_per_s: 100 },
    { kind: 'train', step: 20, epoch: 1, loss: -0.4, lr: 0.049, collapse_std: 0.021, img_per_s: 110 },
    { kind: 'knn', step: 20, epoch: 1, accuracy: 0.31 },
    { kind: 'train', step: 30, epoch: 2, loss: null, lr: 0.048, collapse_std: 0.019, img_per_s: 105 }, // NaN loss, as JSON writes it
    { kind: 'eval', step: 30, accuracy: 0.5 },
    { kind: 'train', step: 40, epoch: 2, loss: -0.6, lr: 0.047, collapse_std: 0.02, img_per_s: 105 },
    { kind: 'train', step: 50, epoch: 2, loss: -0.7, lr: 0.046, collapse_std: 0.02, img_per_s: 105 },
    { kind: 'knn', step: 50, epoch: 2, accuracy: 0.42 },
  ];

  it('writes loss, lr, collapse and knn charts and counts the lines it skipped', async () => {
    const dir = tempDir();
    const text = `${metrics.map((m) => JSON.stringify(m)).join('\n')}\n{"kind": "train", "step": 6\n\n[1,2]\n`;
    writeFileSync(join(dir, 'metrics.jsonl'), text);
    const result = await writeRunPlots(dir, { projDim: 2048 });
    expect(result.files.map((f) => f.slice(dir.length + 1))).toEqual(['plots/loss.svg', 'plots/lr.svg', 'plots/collapse.svg', 'plots/knn.svg']);
    expect(result.lines).toEqual({ train: 5, knn: 2, other: 1, malformed: 2 });
    expect(readdirSync(join(dir, 'plots')).sort()).toEqual(['collapse.svg', 'knn.svg', 'loss.svg', 'lr.svg']);

    const loss = readFileSync(join(dir, 'plots', 'loss.svg'), 'utf8');
    checkXml(loss);
    // Steps 10, 20 | NaN at 30 | 40, 50: a gap, not a line through it.
    expect(polylines(loss).map((l) => l.length)).toEqual([2, 2]);
    const lr = readFileSync(join(dir, 'plots', 'lr.svg'), 'utf8');
    expect(polylines(lr).map((l) => l.length)).toEqual([5]);
    const collapse = readFileSync(join(dir, 'plots', 'collapse.svg'), 'utf8');
    checkXml(collapse);
    expect(collapse).toContain('1/sqrt(2048)');
    expect(collapse).toMatch(/stroke-dasharray/);
    const knn = readFileSync(join(dir, 'plots', 'knn.svg'), 'utf8');
    checkXml(knn);
    expect(polylines(knn).map((l) => l.length)).toEqual([2]);
  });

  it('skips the kNN chart without kNN points and the reference line without projDim', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'metrics.jsonl'), metrics.filter((m) => m.kind === 'train').map((m) => JSON.stringify(m)).join('\n'));
    const result = await writeRunPlots(dir);
    expect(result.files.map((f) => f.slice(dir.length + 1))).toEqual(['plots/loss.svg', 'plots/lr.svg', 'plots/collapse.svg']);
    expect(readFileSync(join(dir, 'plots', 'collapse.svg'), 'utf8')).not.toMatch(/stroke-dasharray/);
  });

  it('orders by step and keeps the last record of a step logged twice (a resumed run)', async () => {
    const dir = tempDir();
    const rows = [
      { kind: 'train', step: 20, loss: 5 },
      { kind: 'train', step: 10, loss: 1 },
      { kind: 'train', step: 20, loss: 2 },
      { kind: 'train', step: 30, loss: 3 },
    ];
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
    await writeRunPlots(dir);
    const [line] = polylines(readFileSync(join(dir, 'plots', 'loss.svg'), 'utf8'));
    expect(line).toHaveLength(3);
    const xs = line!.map((p) => p[0]);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    // Loss 1, 2, 3: evenly rising, so the middle point is halfway in pixels too (5 would put it at the top).
    expect(line![1]![1]).toBeCloseTo((line![0]![1] + line![2]![1]) / 2, 1);
  });

  it('adds a smoothed trend over the raw loss once there are many steps', async () => {
    const dir = tempDir();
    const rows = Array.from({ length: 60 }, (_, i) => JSON.stringify({ kind: 'train', step: i + 1, loss: -i / 60 + (i % 2 ? 0.1 : -0.1) }));
    writeFileSync(join(dir, 'metrics.jsonl'), rows.join('\n'));
    await writeRunPlots(dir);
    const svg = readFileSync(join(dir, 'plots', 'loss.svg'), 'utf8');
    expect(polylines(svg).map((l) => l.length)).toEqual([60, 60]);
    expect(svg).toContain('loss (smoothed)');
    expect(svg).toMatch(/stroke-opacity="0.35"/); // raw curve drawn faint, underneath
  });

  it('writes empty charts for an empty log and fails clearly without one', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'metrics.jsonl'), '');
    const result = await writeRunPlots(dir);
    expect(result.files).toHaveLength(3);
    expect(readFileSync(result.files[0]!, 'utf8')).toContain('no data');
    await expect(writeRunPlots(join(dir, 'missing'))).rejects.toBeInstanceOf(InputFileError);
  });
});
