/**
 * Collects the inputs a loader could not use (missing or undecodable images, CSV rows with an unknown
 * class, patch files whose name does not fit the pattern) and applies `data.on_bad_image`: 'error'
 * fails with the whole list summarised (counts per kind and example paths), 'skip' logs the same
 * summary and lets the loader go on without them. Reporting everything at once saves the user one
 * fix-and-rerun cycle per broken file.
 */
import { UserError } from '../util/errors.js';

export interface BadItem {
  /** What is wrong, e.g. 'missing image', 'unreadable image', 'unknown dx'. */
  kind: string;
  path: string;
  /** Details (decoder message, offending value); optional. */
  detail?: string;
}

/** How many example paths a summary names per kind. */
const EXAMPLES = 3;

export class BadItemsError extends UserError {
  override name = 'BadItemsError';
  constructor(
    message: string,
    readonly items: readonly BadItem[],
  ) {
    super(message);
  }
}

export class BadItems {
  readonly items: BadItem[] = [];

  add(kind: string, path: string, detail?: string): void {
    this.items.push(detail === undefined ? { kind, path } : { kind, path, detail });
  }

  get size(): number {
    return this.items.length;
  }

  /** Number of items per kind, in first-seen order. */
  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const it of this.items) counts.set(it.kind, (counts.get(it.kind) ?? 0) + 1);
    return counts;
  }

  /** One line: "2 missing image (e.g. a.jpg, b.jpg); 1 unreadable image (e.g. c.jpg: why)". */
  summary(): string {
    return [...this.counts()]
      .map(([kind, n]) => {
        const examples = this.items
          .filter((it) => it.kind === kind)
          .slice(0, EXAMPLES)
          .map((it) => (it.detail ? `${it.path}: ${it.detail}` : it.path));
        return `${n} ${kind} (e.g. ${examples.join(', ')}${n > EXAMPLES ? ', …' : ''})`;
      })
      .join('; ');
  }

  /**
   * Applies the policy: nothing to do without bad items; 'error' throws a BadItemsError naming them;
   * 'skip' logs the summary.
   */
  enforce(policy: 'error' | 'skip', what: string, log: (line: string) => void): void {
    if (this.size === 0) return;
    if (policy === 'error') {
      throw new BadItemsError(
        `${what}: ${this.size} unusable input(s): ${this.summary()} ` +
          "(set data.on_bad_image: skip to leave them out)",
        this.items,
      );
    }
    log(`${what}: skipped ${this.size} unusable input(s): ${this.summary()}`);
  }
}
