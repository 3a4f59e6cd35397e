import { describe, expect, it } from 'vitest';
import { stratifiedSubset } from '../../src/eval/label_fraction.js';

/** Class sizes 1, 5, 10, 37, 200 interleaved, plus unknown (-1) items scattered among them. */
function labels(): Int32Array {
  const sizes = [1, 5, 10, 37, 200];
  const out: number[] = [];
  const left = [...sizes];
  for (let round = 0; left.some((n) => n > 0); round++) {
    left.forEach((n, c) => {
      if (n > 0) {
        out.push(c);
        left[c] = n - 1;
      }
    });
    if (round % 3 === 0) out.push(-1);
  }
  return Int32Array.from(out);
}

function countsByClass(y: Int32Array, idx: Int32Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const i of idx) counts.set(y[i]!, (counts.get(y[i]!) ?? 0) + 1);
  return counts;
}

describe('stratifiedSubset', () => {
  const y = labels();
  const sizes = [1, 5, 10, 37, 200];

  it.each([0.01, 0.1, 0.25, 0.5, 0.77, 1])('keeps max(1, round(f x n)) items of every class at f = %s', (f) => {
    const idx = stratifiedSubset(y, f, 7);
    const counts = countsByClass(y, idx);
    expect(counts.has(-1)).toBe(false);
    sizes.forEach((n, c) => expect(counts.get(c)).toBe(Math.max(1, Math.round(f * n))));
    expect(idx.length).toBe(sizes.reduce((a, n) => a + Math.max(1, Math.round(f * n)), 0));
  });

  it('returns sorted, distinct, in-range indices and never an unknown (-1) item, even at f = 1', () => {
    const idx = stratifiedSubset(y, 1, 3);
    expect(idx).toBeInstanceOf(Int32Array);
    for (let i = 1; i < idx.length; i++) expect(idx[i]!).toBeGreaterThan(idx[i - 1]!);
    expect(idx[0]!).toBeGreaterThanOrEqual(0);
    expect(idx[idx.length - 1]!).toBeLessThan(y.length);
    // f = 1 is exactly the labelled items.
    expect([...idx]).toEqual([...y.keys()].filter((i) => y[i]! >= 0));
    // Sorted numerically, not as strings (index 100 after 99, not after 10).
    expect(y.length).toBeGreaterThan(100);
  });

  it('nests the subsets of one seed: every smaller fraction is inside every larger one', () => {
    const fractions = [0.01, 0.05, 0.1, 0.3, 0.5, 1];
    const subsets = fractions.map((f) => new Set(stratifiedSubset(y, f, 11)));
    for (let a = 0; a < subsets.length; a++) {
      for (let b = a + 1; b < subsets.length; b++) {
        for (const i of subsets[a]!) expect(subsets[b]!.has(i)).toBe(true);
      }
    }
  });

  it('is deterministic per seed and differs between seeds', () => {
    expect([...stratifiedSubset(y, 0.1, 5)]).toEqual([...stratifiedSubset(y, 0.1, 5)]);
    expect([...stratifiedSubset(y, 0.1, 5)]).not.toEqual([...stratifiedSubset(y, 0.1, 6)]);
    // The draw is per class: the same items whatever other classes exist (labels appended at the end).
    const extended = Int32Array.from([...y, 9, 9, 9]);
    const base = stratifiedSubset(y, 0.3, 5);
    expect([...stratifiedSubset(extended, 0.3, 5)].filter((i) => i < y.length)).toEqual([...base]);
  });

  it('rejects fractions outside (0, 1]', () => {
    for (const f of [0, -0.1, 1.01, Number.NaN]) expect(() => stratifiedSubset(y, f, 0)).toThrow(RangeError);
  });

  it('returns nothing when no item is labelled', () => {
    expect(stratifiedSubset(Int32Array.from([-1, -1]), 0.5, 0).length).toBe(0);
  });
});
