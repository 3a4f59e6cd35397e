/**
 * Class-stratified label subsets for the low-label probes (SimTriplet reports 1 %, 10 %, 100 %).
 */
import { Rng } from '../util/rng.js';

/**
 * Indices (sorted) of a seeded subset holding round(fraction x count) items of every class, at least
 * one. Items labelled -1 (unknown, see ImageDataset) are never picked.
 *
 * Each class is drawn from its own seeded permutation, so for one seed the subsets are nested: the 1 %
 * items are among the 10 % items. Comparisons across fractions then differ only in how many labels.
 */
export function stratifiedSubset(labels: Int32Array, fraction: number, seed: number): Int32Array {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`label fraction must be in (0, 1], got ${fraction}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((label, i) => {
    if (label < 0) return;
    const members = byClass.get(label);
    if (members) members.push(i);
    else byClass.set(label, [i]);
  });
  const picked: number[] = [];
  // Classes in label order so the draw depends only on (labels, fraction, seed), not on Map insertion order.
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const members = byClass.get(label)!;
    const keep = Math.max(1, Math.round(fraction * members.length));
    const order = new Rng(seed, 'label_fraction', label).permutation(members.length);
    for (let j = 0; j < keep; j++) picked.push(members[order[j]!]!);
  }
  return Int32Array.from(picked).sort();
}
