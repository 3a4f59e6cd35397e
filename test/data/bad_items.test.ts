import { describe, expect, it } from 'vitest';
import { BadItems, BadItemsError } from '../../src/data/bad_items.js';
import { UserError } from '../../src/util/errors.js';

describe('BadItems', () => {
  const bad = new BadItems();
  for (let i = 0; i < 5; i++) bad.add('missing image', `/d/m${i}.jpg`);
  bad.add('unreadable image', '/d/c.jpg', 'cannot read image: truncated');

  it('summarises counts per kind with up to three examples', () => {
    expect(bad.summary()).toBe(
      '5 missing image (e.g. /d/m0.jpg, /d/m1.jpg, /d/m2.jpg, …); 1 unreadable image (e.g. /d/c.jpg: cannot read image: truncated)',
    );
  });

  it("throws a UserError naming them under 'error', logs under 'skip', and is silent when empty", () => {
    const lines: string[] = [];
    let err: unknown;
    try {
      bad.enforce('error', 'data', (l) => lines.push(l));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BadItemsError);
    expect(err).toBeInstanceOf(UserError);
    expect((err as BadItemsError).items).toHaveLength(6);
    expect((err as Error).message).toBe(`data: 6 unusable input(s): ${bad.summary()} (set data.on_bad_image: skip to leave them out)`);
    bad.enforce('skip', 'data', (l) => lines.push(l));
    expect(lines).toEqual([`data: skipped 6 unusable input(s): ${bad.summary()}`]);
    new BadItems().enforce('error', 'data', (l) => lines.push(l));
    expect(lines).toHaveLength(1);
  });
});
