/**
 * Grouped, stratified, seeded splitting: items come in groups (the images of one lesion) that must
 * stay on one side, and every class should be spread over the sides in the requested fractions.
 *
 * Per class, the groups are shuffled (seeded by the class name, so adding a class leaves the others'
 * draw unchanged), ordered largest first, and each goes to the side furthest below its target item
 * count. Every side then ends within one group's size of its target for every class, which a plain
 * shuffle-and-cut of groups does not guarantee when group sizes vary.
 */
import { Rng } from '../util/rng.js';

export interface GroupedItem {
  /** Items with the same group always land on the same side. */
  group: string;
  /** Class label (>= 0) the split is stratified by. */
  label: number;
}

/**
 * Side (index into `fractions`) of each item. A group's class is the most common label among its
 * items (ties: the smaller label), so a group with mixed labels still moves as one.
 */
export function groupedStratifiedSplit(items: readonly GroupedItem[], fractions: readonly number[], seed: number): Int32Array {
  if (!fractions.some((f) => f > 0)) throw new RangeError(`split fractions must include a positive one, got ${fractions.join(', ')}`);
  const groups = new Map<string, number[]>();
  items.forEach((it, i) => {
    const members = groups.get(it.group);
    if (members) members.push(i);
    else groups.set(it.group, [i]);
  });
  const byClass = new Map<number, string[]>();
  for (const [name, members] of groups) {
    const votes = new Map<number, number>();
    for (const m of members) votes.set(items[m]!.label, (votes.get(items[m]!.label) ?? 0) + 1);
    let label = Infinity;
    let best = 0;
    for (const [l, v] of votes) if (v > best || (v === best && l < label)) [label, best] = [l, v];
    const list = byClass.get(label);
    if (list) list.push(name);
    else byClass.set(label, [name]);
  }

  const side = new Int32Array(items.length);
  const sum = fractions.reduce((a, b) => a + b, 0);
  for (const [label, names] of [...byClass].sort((a, b) => a[0] - b[0])) {
    // Sorted names first: the draw must not depend on the order of rows in the input file.
    names.sort();
    const order = new Rng(seed, 'split', label).permutation(names.length);
    const shuffled = Array.from(order, (k) => names[k]!);
    // Stable sort keeps the shuffled order among groups of one size.
    shuffled.sort((a, b) => groups.get(b)!.length - groups.get(a)!.length);
    const total = shuffled.reduce((a, g) => a + groups.get(g)!.length, 0);
    const targets = fractions.map((f) => (f / sum) * total);
    const filled = fractions.map(() => 0);
    for (const g of shuffled) {
      // Sides with fraction 0 never receive anything, even once every other side is full.
      let pick = -1;
      for (let s = 0; s < fractions.length; s++) {
        if (fractions[s]! > 0 && (pick < 0 || targets[s]! - filled[s]! > targets[pick]! - filled[pick]!)) pick = s;
      }
      const members = groups.get(g)!;
      filled[pick]! += members.length;
      for (const m of members) side[m] = pick;
    }
  }
  return side;
}
