import { describe, expect, it } from 'vitest';
import { groupedStratifiedSplit, type GroupedItem } from '../../src/data/split.js';
import { Rng } from '../../src/util/rng.js';

/** HAM10000-like items: 7 classes with the real dx skew, lesions of 1-6 images (mostly 1). */
function hamLike(seed: number): GroupedItem[] {
  const lesionsPerClass = [230, 380, 730, 80, 770, 5400, 100];
  const rng = new Rng(seed, 'ham-like');
  const items: GroupedItem[] = [];
  lesionsPerClass.forEach((n, label) => {
    for (let l = 0; l < n; l++) {
      const size = rng.bernoulli(0.75) ? 1 : 2 + rng.int(5);
      for (let k = 0; k < size; k++) items.push({ group: `L${label}-${l}`, label });
    }
  });
  return items;
}

describe('groupedStratifiedSplit', () => {
  const items = hamLike(1);
  const fractions = [0.7, 0.15, 0.15];
  const side = groupedStratifiedSplit(items, fractions, 3);

  it('never puts one group on two sides', () => {
    const sidesOf = new Map<string, Set<number>>();
    items.forEach((it, i) => sidesOf.set(it.group, (sidesOf.get(it.group) ?? new Set()).add(side[i]!)));
    const split = [...sidesOf].filter(([, s]) => s.size > 1).map(([g]) => g);
    expect(split).toEqual([]);
    // Real multi-image groups exist, so the check above is not vacuous.
    expect(items.length - sidesOf.size).toBeGreaterThan(1000);
  });

  it('hits the fractions within one group size for every class and side', () => {
    const maxGroup = 6;
    for (let label = 0; label < 7; label++) {
      const ofClass = items.map((it, i) => [it, i] as const).filter(([it]) => it.label === label);
      for (let s = 0; s < 3; s++) {
        const count = ofClass.filter(([, i]) => side[i] === s).length;
        expect(Math.abs(count - fractions[s]! * ofClass.length)).toBeLessThanOrEqual(maxGroup);
      }
    }
  });

  it('is a function of the seed and the items, not of their order', () => {
    // Compared as strings: vitest's deep equality on 10k-element typed arrays takes seconds.
    const text = (a: Int32Array) => a.join('');
    expect(text(groupedStratifiedSplit(items, fractions, 3))).toBe(text(side));
    expect(text(groupedStratifiedSplit(items, fractions, 4))).not.toBe(text(side));
    const perm = new Rng(9).permutation(items.length);
    const permuted = groupedStratifiedSplit(Array.from(perm, (i) => items[i]!), fractions, 3);
    expect(text(permuted)).toBe(text(Int32Array.from(perm, (i) => side[i]!)));
  });

  it('gives nothing to a side with fraction 0 and rejects all-zero fractions', () => {
    const two = groupedStratifiedSplit(items.slice(0, 500), [0.8, 0, 0.2], 0);
    expect(two.includes(1)).toBe(false);
    expect(two.includes(2)).toBe(true);
    expect(() => groupedStratifiedSplit(items, [0, 0], 0)).toThrow(RangeError);
  });

  it('moves a group with mixed labels as one, by its majority label', () => {
    const mixed: GroupedItem[] = [
      { group: 'g', label: 0 },
      { group: 'g', label: 1 },
      { group: 'g', label: 1 },
      ...Array.from({ length: 20 }, (_, i) => ({ group: `h${i}`, label: 1 })),
    ];
    const s = groupedStratifiedSplit(mixed, [0.5, 0.5], 2);
    expect(new Set([s[0], s[1], s[2]]).size).toBe(1);
    // Class 1 (23 items incl. the group) splits ~11.5/11.5: within the group's size of 3.
    const ones = [...s].filter((v) => v === 0).length;
    expect(Math.abs(ones - 11.5)).toBeLessThanOrEqual(3);
  });
});
