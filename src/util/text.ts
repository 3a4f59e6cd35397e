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

/** Splits text at spaces into lines of at most `width` characters (a longer word gets a line of its own). */
export function wrapText(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/** "1 epoch", "3 epochs", "0 skipped steps": a count with its noun, plural unless it is 1. */
export function plural(n: number, noun: string, many = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : many}`;
}
