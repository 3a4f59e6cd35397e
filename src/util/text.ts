/** Small formatting helpers for error messages and logs. */

/** "a, b, c (+N more)" */
export function listSome(names: readonly string[], n = 5): string {
  const head = names.slice(0, n).join(', ');
  return names.length > n ? `${head} (+${names.length - n} more)` : head;
}

/** "[3, 3, 64, 64]" */
export function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
