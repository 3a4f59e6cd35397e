import { describe, expect, it } from 'vitest';
import { classificationMetrics, confusionMatrix } from '../../src/eval/metrics.js';

const i32 = (xs: number[]): Int32Array => Int32Array.from(xs);

describe('confusionMatrix', () => {
  it('indexes [true][predicted]', () => {
    // Asymmetric on purpose: a transposed matrix would not match.
    const cm = confusionMatrix(i32([0, 0, 1, 2]), i32([1, 1, 1, 0]), 3);
    expect(cm).toEqual([
      [0, 2, 0],
      [0, 1, 0],
      [1, 0, 0],
    ]);
  });

  it('rejects mismatched lengths and labels or predictions outside [0, k)', () => {
    expect(() => confusionMatrix(i32([0, 1]), i32([0]), 2)).toThrow(RangeError);
    expect(() => confusionMatrix(i32([2]), i32([0]), 2)).toThrow(/outside \[0, 2\)/);
    expect(() => confusionMatrix(i32([0]), i32([-1]), 2)).toThrow(RangeError);
    expect(() => confusionMatrix(i32([-1]), i32([0]), 2)).toThrow(RangeError);
  });
});

describe('classificationMetrics', () => {
  it('majority-class predictor on an imbalanced set: accuracy is high, balanced accuracy is chance', () => {
    const yTrue = i32([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    const yPred = i32(new Array(10).fill(0));
    const m = classificationMetrics(yTrue, yPred, ['nv', 'mel']);
    expect(m.accuracy).toBeCloseTo(0.9, 12);
    expect(m.balanced_accuracy).toBeCloseTo(0.5, 12);
    // F1(nv) = 2 * 0.9 * 1 / 1.9; F1(mel) = 0 (never predicted: zero_division = 0, not NaN).
    expect(m.per_class[0]!.precision).toBeCloseTo(0.9, 12);
    expect(m.per_class[1]!.precision).toBe(0);
    expect(m.per_class[1]!.f1).toBe(0);
    expect(m.macro_f1).toBeCloseTo(1.8 / 1.9 / 2, 12);
    expect(m.per_class.map((c) => c.support)).toEqual([9, 1]);
  });

  it('hand-computed case: a class predicted but never true counts in macro F1, one absent from both does not', () => {
    // Classes a, b, c, d, e. d is predicted once but never true; e appears nowhere.
    const yTrue = i32([0, 0, 0, 0, 0, 0, 1, 1, 2, 2]);
    const yPred = i32([0, 0, 0, 0, 0, 1, 1, 0, 3, 2]);
    const m = classificationMetrics(yTrue, yPred, ['a', 'b', 'c', 'd', 'e']);
    expect(m.confusion_matrix).toEqual([
      [5, 1, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 0, 1, 1, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
    ]);
    expect(m.accuracy).toBeCloseTo(0.7, 12);
    // Recalls over classes present in yTrue: (5/6 + 1/2 + 1/2) / 3 = 11/18 (sklearn balanced_accuracy_score).
    expect(m.balanced_accuracy).toBeCloseTo(11 / 18, 12);
    expect(m.balanced_accuracy).not.toBeCloseTo(m.accuracy, 3);
    const expected = [
      { name: 'a', precision: 5 / 6, recall: 5 / 6, f1: 5 / 6, support: 6 },
      { name: 'b', precision: 1 / 2, recall: 1 / 2, f1: 1 / 2, support: 2 },
      { name: 'c', precision: 1, recall: 1 / 2, f1: 2 / 3, support: 2 },
      { name: 'd', precision: 0, recall: 0, f1: 0, support: 0 },
      { name: 'e', precision: 0, recall: 0, f1: 0, support: 0 },
    ];
    m.per_class.forEach((c, i) => {
      const e = expected[i]!;
      expect(c.name).toBe(e.name);
      expect(c.support).toBe(e.support);
      expect(c.precision).toBeCloseTo(e.precision, 12);
      expect(c.recall).toBeCloseTo(e.recall, 12);
      expect(c.f1).toBeCloseTo(e.f1, 12);
    });
    // sklearn f1_score(average='macro') over labels = union(yTrue, yPred) = {a, b, c, d}:
    // (5/6 + 1/2 + 2/3 + 0) / 4 = 0.5. Dropping d would give 2/3; counting e would give 0.4.
    expect(m.macro_f1).toBeCloseTo(0.5, 12);
  });

  it('perfect predictions score 1 everywhere; empty input scores 0 without NaN', () => {
    const y = i32([2, 0, 1, 1]);
    const m = classificationMetrics(y, y, ['a', 'b', 'c']);
    expect([m.accuracy, m.balanced_accuracy, m.macro_f1]).toEqual([1, 1, 1]);
    const empty = classificationMetrics(i32([]), i32([]), ['a', 'b']);
    expect([empty.accuracy, empty.balanced_accuracy, empty.macro_f1]).toEqual([0, 0, 0]);
  });

  it('passes label-range errors through', () => {
    expect(() => classificationMetrics(i32([0, 3]), i32([0, 0]), ['a', 'b'])).toThrow(RangeError);
  });
});
