import { describe, expect, it } from 'vitest';
import { createProgress, formatDuration, formatNumber, type ProgressOptions } from '../../src/report/progress.js';

/** Collects writes; the clock is advanced by hand. */
function harness(options: Partial<ProgressOptions> & { isTTY: boolean; columns?: number }) {
  const writes: string[] = [];
  let t = 1_000_000;
  const stream = { write: (s: string) => writes.push(s), isTTY: options.isTTY, columns: options.columns };
  const progress = createProgress({ label: 'train epoch 3/10', total: 100, unit: 'step', now: () => t, ...options, stream });
  return {
    progress,
    writes,
    advance: (ms: number) => (t += ms),
    lines: () => writes.join('').split('\n').filter(Boolean),
  };
}

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [45, '45s'],
    [59.4, '59s'],
    [59.6, '1m00s'],
    [185, '3m05s'],
    [3599.7, '1h00m'],
    [3720, '1h02m'],
    [3779, '1h02m'],
    [100 * 3600, '100h00m'],
  ])('%s s -> %s', (s, text) => expect(formatDuration(s)).toBe(text));

  it('prints ? for unknown durations', () => {
    for (const s of [Number.NaN, Number.POSITIVE_INFINITY, -1]) expect(formatDuration(s)).toBe('?');
  });
});

describe('formatNumber', () => {
  it('keeps four significant digits and uses exponents for tiny or huge values', () => {
    expect(formatNumber(-0.51234)).toBe('-0.5123');
    expect(formatNumber(0.05)).toBe('0.05');
    expect(formatNumber(42)).toBe('42');
    expect(formatNumber(1.5e-5)).toBe('1.5e-5');
    expect(formatNumber(1234567.8)).toBe('1.235e6');
    expect(formatNumber(25_000_000)).toBe('25000000'); // counts stay exact
    expect(formatNumber(Number.NaN)).toBe('nan');
  });
});

describe('createProgress on a terminal', () => {
  it('redraws one line with \\r and erase-line, showing bar, count, percent, rate, fields and ETA', () => {
    const h = harness({ isTTY: true });
    h.advance(1000);
    h.progress.update(10, { loss: -0.51234, lr: '0.05' });
    expect(h.writes).toHaveLength(1);
    const w = h.writes[0]!;
    expect(w.startsWith('\r\x1b[2K')).toBe(true);
    expect(w).not.toContain('\n');
    expect(w).toContain('train epoch 3/10');
    expect(w).toMatch(/\[=+>? +\]/);
    expect(w).toContain('step 10/100');
    expect(w).toContain('10%');
    expect(w).toContain('loss -0.5123');
    expect(w).toContain('lr 0.05');
    expect(w).toContain('10 step/s');
    // 90 steps left at 10 step/s; elapsed<eta as in tqdm.
    expect(w).toContain('1s<9s');
  });

  it('throttles redraws to one per 100 ms but always draws the final line, ending it with a newline', () => {
    const h = harness({ isTTY: true });
    for (let i = 1; i <= 50; i++) {
      h.advance(10);
      h.progress.update(i);
    }
    // 500 ms of updates every 10 ms: the first, then one per 100 ms.
    expect(h.writes.length).toBeGreaterThanOrEqual(5);
    expect(h.writes.length).toBeLessThanOrEqual(6);
    h.progress.finish({ loss: 0.25 });
    const last = h.writes[h.writes.length - 1]!;
    expect(last.startsWith('\r')).toBe(true);
    expect(last.endsWith('\n')).toBe(true);
    expect(last).toContain('step 50/100');
    expect(last).toContain('loss 0.25');
    // Finished: later calls draw nothing.
    const count = h.writes.length;
    h.progress.update(60);
    h.progress.finish();
    expect(h.writes).toHaveLength(count);
  });

  it('cuts the line to the terminal width so it never wraps', () => {
    const h = harness({ isTTY: true, columns: 40 });
    h.advance(500);
    h.progress.update(5, { a_very_long_field_name: 'and a long value to go with it' });
    expect(h.writes[0]!.replace('\r\x1b[2K', '').length).toBe(39);
  });

  it('log() prints a message above the bar and redraws it', () => {
    const h = harness({ isTTY: true });
    h.advance(100);
    h.progress.update(3);
    h.progress.log('checkpoint saved');
    expect(h.writes[1]).toBe('\r\x1b[2Kcheckpoint saved\n');
    expect(h.writes[2]).toContain('step 3/100');
  });
});

describe('createProgress in a log (not a terminal)', () => {
  it('never writes \\r; prints self-contained lines at each 10 % and a final line', () => {
    const h = harness({ isTTY: false, logIntervalS: 0 });
    for (let i = 1; i <= 100; i++) {
      h.advance(200);
      h.progress.update(i, { loss: -0.5, lr: 0.05 });
    }
    h.progress.finish();
    expect(h.writes.join('')).not.toContain('\r');
    const lines = h.lines();
    // 10 %, 20 %, ..., 90 %, then the final line (100 % is left to finish).
    expect(lines).toHaveLength(10);
    expect(lines[3]).toBe('train epoch 3/10 step 40/100 40% loss -0.5 lr 0.05 5 step/s elapsed 8s eta 12s');
    expect(lines[9]).toBe('train epoch 3/10 step 100/100 100% loss -0.5 lr 0.05 5 step/s done in 20s');
  });

  it('stop() ends a loop cut short with "stopped after", never "done in"', () => {
    const h = harness({ isTTY: false, logIntervalS: 0 });
    h.advance(1000);
    h.progress.update(50, { loss: 0.5 });
    h.progress.stop();
    const last = h.lines().at(-1)!;
    expect(last).toBe('train epoch 3/10 step 50/100 50% loss 0.5 50 step/s stopped after 1s');
    const tty = harness({ isTTY: true });
    tty.advance(2000);
    tty.progress.update(30);
    tty.progress.stop();
    expect(tty.writes.at(-1)).toMatch(/step 30\/100 30% .*stopped after 2s\n$/);
    expect(tty.writes.join('')).not.toContain('done in');
  });

  it('prints at most one line per interval between milestones', () => {
    const h = harness({ isTTY: false, total: 10_000, logIntervalS: 5, logEveryFraction: 0 });
    for (let i = 1; i <= 200; i++) {
      h.advance(100); // 20 s in all
      h.progress.update(i);
    }
    expect(h.lines()).toHaveLength(4);
    expect(h.lines()[0]).toContain('elapsed 5s');
  });

  it('with an unknown total: counts without percent or ETA', () => {
    const h = harness({ isTTY: false, total: 0, unit: 'img', logIntervalS: 1 });
    h.advance(2000);
    h.progress.update(64);
    expect(h.lines()).toEqual(['train epoch 3/10 img 64 32 img/s elapsed 2s']);
  });

  it('shows slow loops as seconds per item', () => {
    const h = harness({ isTTY: false, total: 10, unit: 'epoch', logIntervalS: 0 });
    h.advance(4000);
    h.progress.update(1);
    expect(h.lines()[0]).toContain('4 s/epoch');
    expect(h.lines()[0]).toContain('eta 36s');
  });
});

describe('rate and ETA', () => {
  it('constant speed gives the exact rate and ETA', () => {
    const h = harness({ isTTY: false });
    for (let i = 1; i <= 30; i++) {
      h.advance(250);
      h.progress.update(i);
    }
    const s = h.progress.state();
    expect(s.rate).toBeCloseTo(4, 10);
    expect(s.etaS).toBeCloseTo(70 / 4, 10);
    expect(s.elapsedS).toBeCloseTo(7.5, 10);
  });

  it('follows a speed change with an exponential average weighted by time', () => {
    const h = harness({ isTTY: false, rateTimeConstantS: 10 });
    h.advance(10_000);
    h.progress.update(10); // 1 step/s
    expect(h.progress.state().rate).toBeCloseTo(1, 10);
    h.advance(10_000);
    h.progress.update(40); // 3 step/s over the next 10 s
    const alpha = 1 - Math.exp(-1);
    const rate = 1 + alpha * (3 - 1);
    expect(h.progress.state().rate).toBeCloseTo(rate, 10);
    expect(h.progress.state().etaS).toBeCloseTo(60 / rate, 10);
  });

  it('has no ETA before time has passed, and an ETA of 0 when done', () => {
    const h = harness({ isTTY: false });
    h.progress.update(5);
    expect(h.progress.state().etaS).toBeNaN();
    h.advance(1000);
    h.progress.update(100);
    expect(h.progress.state().etaS).toBe(0);
  });
});
