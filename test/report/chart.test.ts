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

  it('keeps decimals for a narrow range of ordinary values (collapse std), exponents only for tiny or huge axes', () => {
    // An axis from 0.1270 to 0.1285: 1.275e-1 reads worse than 0.1275.
    expect(formatTick(0.1275, 5e-4, 0.1285)).toBe('0.1275');
    expect(niceTicks(0.1271, 0.1284, 5).values.map((v) => formatTick(v, 5e-4, 0.1285))).toEqual(['0.1270', '0.1275', '0.1280', '0.1285']);
    const svg = lineChartSvg({ title: 't', series: [{ name: 's', points: [[0, 0.1271], [1, 0.1284]] }] });
    expect(svg).not.toMatch(/>\d(\.\d+)?e-\d+</);
    expect(svg).toContain('>0.1275<');
    expect(formatTick(2e-4, 1e-4, 4e-4)).toBe('2e-4');
    expect(formatTick(3e6, 1e6, 5e6)).toBe('3e6');
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

  /** The legend box (x, y, w, h), or undefined when the legend is not boxed inside the plot. */
  const legendBox = (svg: string) => {
    const m = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="#ffffff" fill-opacity/.exec(svg);
    return m ? m.slice(1).map(Number) as [number, number, number, number] : undefined;
  };
  /** Whether any polyline (sampled along its segments) or marker passes through the box. */
  const covers = (svg: string, [x, y, w, h]: readonly number[]) => {
    const inside = (a: number, b: number) => a >= x! && a <= x! + w! && b >= y! && b <= y! + h!;
    const markers = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)"/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
    return (
      markers.some(([a, b]) => inside(a, b)) ||
      polylines(svg).some((line) => line.some((p, i) => i > 0 && Array.from({ length: 50 }, (_, k) => k / 50).some((t) => inside(line[i - 1]![0] + (p[0] - line[i - 1]![0]) * t, line[i - 1]![1] + (p[1] - line[i - 1]![1]) * t))))
    );
  };

  it('puts the legend in a corner no curve crosses, bottom corners first with legendBottom', () => {
    // Flat curves in the middle: every corner is free, so the preference decides.
    const flat = { title: 't', series: [{ name: 'a', points: [[0, 0.45], [1, 0.5]] as const }, { name: 'b', points: [[0, 0.5], [1, 0.55]] as const }], includeY: [0, 1] };
    expect(legendBox(lineChartSvg({ ...flat, legendBottom: true }))![1]).toBeGreaterThan(legendBox(lineChartSvg(flat))![1] + 150);
    // Rising curves end top-right: the legend takes the bottom-right corner instead.
    const rising = { title: 't', series: [{ name: 'a', points: [[0, 0.1], [1, 0.9]] as const }, { name: 'b', points: [[0, 0.15], [1, 0.95]] as const }], includeY: [0, 1] };
    const box = legendBox(lineChartSvg(rising))!;
    expect(covers(lineChartSvg(rising), box)).toBe(false);
    expect(box[1]).toBeGreaterThan(200);
  });

  it('label fractions scoring 0.1 to 0.5 keep their lines and end markers clear of the legend and the frame', () => {
    const svg = lineChartSvg({
      title: 'Linear probe vs label fraction',
      series: [
        { name: 'balanced accuracy', points: [[0.01, 0.12], [0.1, 0.31], [1, 0.48]], markers: true },
        { name: 'macro F1', points: [[0.01, 0.1], [0.1, 0.27], [1, 0.45]], markers: true },
      ],
      referenceLines: [{ y: 0.4, label: 'kNN balanced accuracy (all labels)' }],
      logX: true,
      includeY: [0, 1],
      legendBottom: true,
    });
    const box = legendBox(svg);
    expect(box).toBeDefined();
    expect(covers(svg, box!)).toBe(false);
    // Every marker wholly inside the plot frame, none on its border.
    const frame = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/.exec(svg)!.slice(1).map(Number);
    for (const m of svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="3.5"/g)) {
      const [cx, cy] = [Number(m[1]), Number(m[2])];
      expect(cx - 3.5).toBeGreaterThan(frame[0]!);
      expect(cx + 3.5).toBeLessThan(frame[0]! + frame[2]!);
      expect(cy - 3.5).toBeGreaterThan(frame[1]!);
      expect(cy + 3.5).toBeLessThan(frame[1]! + frame[3]!);
    }
  });

  it('when curves cross every corner, the legend goes below the plot, which shrinks to make room', () => {
    const crossing = { title: 't', xLabel: 'step', series: [{ name: 'a', points: [[0, 0], [1, 1]] as const }, { name: 'b', points: [[0, 1], [1, 0]] as const }] };
    const svg = lineChartSvg(crossing);
    checkXml(svg);
    expect(legendBox(svg)).toBeUndefined();
    const frame = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/.exec(svg)!.slice(1).map(Number);
    const labelY = Number(/<text x="[\d.]+" y="([\d.]+)" dominant-baseline="middle">a<\/text>/.exec(svg)![1]);
    const xLabelY = Number(/<text x="[\d.]+" y="([\d.]+)" text-anchor="middle" font-size="12">step<\/text>/.exec(svg)![1]);
    expect(labelY).toBeGreaterThan(xLabelY);
    expect(labelY).toBeLessThan(360);
    expect(frame[1]! + frame[3]!).toBeLessThan(360 - 50 - 16);
  });

  it('keeps a reference line at the edge of the values off the frame', () => {
    // Collapse std just under 1/sqrt(256) = 0.0625: the line is the top value but must not be the border.
    const svg = lineChartSvg({ title: 't', series: [{ name: 'std', points: [[0, 0.06], [10, 0.0621]] }], referenceLines: [{ y: 0.0625, label: '1/sqrt(256)' }] });
    const frame = /<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/.exec(svg)!.slice(1).map(Number);
    const refY = Number(/<line x1="[\d.]+" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" stroke="#666666" stroke-width="1.2"/.exec(svg)![1]);
    expect(refY).toBeGreaterThan(frame[1]! + 5);
    expect(refY).toBeLessThan(frame[1]! + frame[3]! - 5);
  });

  it('a subtitle under the title', () => {
    const svg = lineChartSvg({ title: 'Loss', subtitle: 'different scales & methods', series: [{ name: 'a', points: [[0, 1], [1, 2]] }] });
    checkXml(svg);
    expect(svg).toContain('different scales &amp; methods</text>');
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
