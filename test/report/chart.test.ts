import { describe, expect, it } from 'vitest';
import { escapeXml, finiteRuns, formatTick, lineChartSvg, logAxis, niceStep, niceTicks, smoothSeries } from '../../src/report/chart.js';
import { checkXml, polylines } from './svg_check.js';

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

describe('log axes', () => {
  it('logAxis ticks whole decades, with 2 and 5 inside short ranges, labelled by value', () => {
    const short = logAxis(-2, 0); // 0.01 .. 1: label fractions
    expect(short.labels).toEqual(['0.01', '0.02', '0.05', '0.1', '0.2', '0.5', '1']);
    expect([short.min, short.max]).toEqual([-2, 0]);
    const wide = logAxis(0, 5.2); // 1 .. 158489: loss scales
    expect(wide.labels).toEqual(['1', '10', '100', '1000', '10000', '1e5', '1e6']);
    // One power of ten alone gets the decade below it.
    expect(logAxis(0, 0).labels).toEqual(['0.1', '0.2', '0.5', '1']);
  });

  it('places points by log10 of their value and leaves gaps at values <= 0', () => {
    const svg = lineChartSvg({ title: 't', series: [{ name: 's', points: [[0.01, 1], [0.1, 10], [1, 100], [2, 0], [3, 1000]] }], logX: true, logY: true, width: 500, height: 300 });
    checkXml(svg);
    const lines = polylines(svg);
    expect(lines.map((l) => l.length)).toEqual([3]); // (2, 0) cannot be drawn on a log y axis: a gap
    const [a, b, c] = lines[0]!;
    // Equal ratios are equal distances on both axes.
    expect(b![0] - a![0]).toBeCloseTo(c![0] - b![0], 1);
    expect(b![1] - a![1]).toBeCloseTo(c![1] - b![1], 1);
    expect(svg).toContain('>1000</text>');
    expect(svg).not.toMatch(/NaN|Infinity/);
  });
});

describe('chart options', () => {
  it('includeY widens the y range to the given values', () => {
    const svg = lineChartSvg({ title: 't', series: [{ name: 's', points: [[1, 0.4], [2, 0.5]] }], includeY: [0, 1] });
    expect(svg).toMatch(/>0<\/text>/);
    expect(svg).toMatch(/>1\.0<\/text>/);
  });

  it('legendBottom moves the legend box to the bottom of the plot area', () => {
    const opts = { title: 't', series: [{ name: 'a', points: [[0, 0], [1, 1]] as const }, { name: 'b', points: [[0, 1], [1, 0]] as const }] };
    const boxY = (svg: string) => Number(/<rect x="[\d.]+" y="([\d.]+)" width="[\d.]+" height="[\d.]+" fill="#ffffff" fill-opacity/.exec(svg)![1]);
    expect(boxY(lineChartSvg({ ...opts, legendBottom: true }))).toBeGreaterThan(boxY(lineChartSvg(opts)) + 150);
  });

  it('markers put a dot on every point, outside the clip region so edge points stay whole', () => {
    const svg = lineChartSvg({ title: 't', series: [{ name: 's', points: [[0.01, 0.2], [0.1, 0.5], [1, 0.7]], markers: true }], logX: true });
    checkXml(svg);
    expect(svg.match(/<circle /g)).toHaveLength(3);
    expect(svg.lastIndexOf('<circle ')).toBeGreaterThan(svg.indexOf('</g>'));
    // A lone point with markers gets one dot, not two.
    expect(lineChartSvg({ title: 't', series: [{ name: 's', points: [[1, 0.5]], markers: true }] }).match(/<circle /g)).toHaveLength(1);
  });
});
