/**
 * data.limit and data.test_limit keep the first N items of a split (smoke runs). On imbalanced data
 * that can leave a class with no item at all, which would silently turn a 7-class probe into a
 * 6-class one; a load says so in one line.
 */

/** Classes with items in `all` but none in `kept`, with their count in `all`. */
export function emptiedClasses(all: ArrayLike<number>, kept: ArrayLike<number>, classNames: readonly string[]): { name: string; without: number }[] {
  const count = (labels: ArrayLike<number>) => {
    const n = new Array<number>(classNames.length).fill(0);
    for (let i = 0; i < labels.length; i++) if (labels[i]! >= 0) n[labels[i]!]!++;
    return n;
  };
  const before = count(all);
  const after = count(kept);
  return classNames.map((name, c) => ({ name, without: before[c]!, with: after[c]! })).filter((c) => c.without > 0 && c.with === 0).map(({ name, without }) => ({ name, without }));
}

/**
 * One line when `limit` (the value of config key `key`) emptied classes of the split `what`:
 * "data.limit 64: ham10000 train keeps no image of vasc (12 without the limit); ...".
 */
export function warnEmptiedClasses(
  key: string,
  limit: number | undefined,
  what: string,
  all: ArrayLike<number>,
  kept: ArrayLike<number>,
  classNames: readonly string[],
  log: (line: string) => void,
): void {
  if (limit === undefined) return;
  const emptied = emptiedClasses(all, kept, classNames);
  if (emptied.length === 0) return;
  const list = emptied.map((c) => `${c.name} (${c.without} without the limit)`).join(', ');
  log(`${key} ${limit}: ${what} keeps no image of ${list}; nothing is fitted or scored on ${emptied.length === 1 ? 'that class' : 'those classes'} there; raise ${key} or leave it out`);
}
