import { describe, expect, it } from 'vitest';
import { initialLr, learningRate, type ScheduleSpec } from '../../src/optim/schedule.js';

const spec = (over: Partial<ScheduleSpec> = {}): ScheduleSpec => ({
  baseLr: 0.05,
  batchSize: 512,
  warmupEpochs: 0,
  epochs: 10,
  stepsPerEpoch: 100,
  ...over,
});

describe('initialLr', () => {
  it('is base_lr * batch / 256 (linear scaling rule)', () => {
    expect(initialLr({ baseLr: 0.05, batchSize: 256 })).toBeCloseTo(0.05, 12);
    expect(initialLr({ baseLr: 0.05, batchSize: 512 })).toBeCloseTo(0.1, 12);
    expect(initialLr({ baseLr: 0.03, batchSize: 128 })).toBeCloseTo(0.015, 12);
  });
});

describe('learningRate: cosine without warm-up (official SimSiam)', () => {
  const s = spec();
  const lr0 = initialLr(s); // 0.1
  const total = s.epochs * s.stepsPerEpoch;

  it('starts at lr0', () => {
    expect(learningRate(s, 0)).toBeCloseTo(lr0, 12);
  });

  it('is lr0/2 halfway and follows 0.5*(1+cos(pi*t))', () => {
    expect(learningRate(s, total / 2)).toBeCloseTo(lr0 / 2, 12);
    expect(learningRate(s, total / 4)).toBeCloseTo((lr0 * (1 + Math.SQRT1_2)) / 2, 12);
    expect(learningRate(s, (3 * total) / 4)).toBeCloseTo((lr0 * (1 - Math.SQRT1_2)) / 2, 12);
  });

  it('decreases monotonically to about 0 at the last step and stays at 0 past the end', () => {
    let prev = Infinity;
    for (let t = 0; t < total; t++) {
      const v = learningRate(s, t);
      expect(v).toBeLessThanOrEqual(prev);
      expect(v).toBeGreaterThanOrEqual(0);
      prev = v;
    }
    expect(learningRate(s, total - 1)).toBeLessThan(1e-4 * lr0);
    expect(learningRate(s, total - 1)).toBeGreaterThan(0);
    expect(learningRate(s, total)).toBeCloseTo(0, 15);
    expect(learningRate(s, total + 50)).toBeCloseTo(0, 15);
  });
});

describe('learningRate: linear warm-up then cosine (medical repos)', () => {
  const s = spec({ warmupEpochs: 2, epochs: 10, stepsPerEpoch: 50 });
  const lr0 = initialLr(s);
  const warm = 100;
  const total = 500;

  it('ramps linearly from lr0/warm up to exactly lr0 at the end of the warm-up', () => {
    expect(learningRate(s, 0)).toBeCloseTo(lr0 / warm, 12);
    for (let t = 0; t < warm; t++) expect(learningRate(s, t)).toBeCloseTo((lr0 * (t + 1)) / warm, 12);
    // Constant increments: linear.
    const d1 = learningRate(s, 10) - learningRate(s, 9);
    const d2 = learningRate(s, 80) - learningRate(s, 79);
    expect(d1).toBeCloseTo(d2, 12);
    expect(learningRate(s, warm - 1)).toBeCloseTo(lr0, 12);
  });

  it('then decays by cosine over the remaining steps: lr0 right after, lr0/2 halfway, ~0 at the end', () => {
    expect(learningRate(s, warm)).toBeCloseTo(lr0, 12);
    expect(learningRate(s, warm + (total - warm) / 2)).toBeCloseTo(lr0 / 2, 12);
    expect(learningRate(s, total - 1)).toBeLessThan(1e-3 * lr0);
    expect(learningRate(s, total)).toBeCloseTo(0, 15);
    // No value ever exceeds lr0.
    for (let t = 0; t < total; t++) expect(learningRate(s, t)).toBeLessThanOrEqual(lr0 + 1e-12);
  });

  it('fractional warm-up epochs round to whole steps', () => {
    const f = spec({ warmupEpochs: 0.5, stepsPerEpoch: 10 }); // 5 warm-up steps
    expect(learningRate(f, 4)).toBeCloseTo(initialLr(f), 12);
    expect(learningRate(f, 0)).toBeCloseTo(initialLr(f) / 5, 12);
  });

  it('warm-up 0 starts at lr0', () => {
    expect(learningRate(spec({ warmupEpochs: 0 }), 0)).toBeCloseTo(initialLr(spec()), 12);
  });
});

describe('learningRate: BiT-HyperRule (lr_batch_ref 512, step decay)', () => {
  const s: ScheduleSpec = { baseLr: 0.003, batchSize: 128, batchRef: 512, warmupEpochs: 1, epochs: 10, stepsPerEpoch: 10, decay: 'steps' };
  const lr0 = 0.003 * 128 / 512;

  it('lr0 = base_lr x batch / batchRef', () => {
    expect(initialLr(s)).toBeCloseTo(lr0, 15);
    expect(initialLr({ baseLr: 0.003, batchSize: 512, batchRef: 512 })).toBeCloseTo(0.003, 15);
    // The /256 default with half the base lr is the same rule.
    expect(initialLr({ baseLr: 0.0015, batchSize: 128 })).toBeCloseTo(lr0, 15);
  });

  it('warms up linearly, then holds lr0 and drops x0.1 at 30, 60 and 90 % of all steps', () => {
    expect(learningRate(s, 0)).toBeCloseTo(lr0 / 10, 15);
    expect(learningRate(s, 9)).toBeCloseTo(lr0, 15);
    const expected = (step: number): number => lr0 * (step < 30 ? 1 : step < 60 ? 0.1 : step < 90 ? 0.01 : 0.001);
    for (let step = 10; step < 100; step++) expect(learningRate(s, step), `step ${step}`).toBeCloseTo(expected(step), 15);
    expect(learningRate(s, 29)).toBeCloseTo(lr0, 15);
    expect(learningRate(s, 30)).toBeCloseTo(lr0 / 10, 15);
  });
});
