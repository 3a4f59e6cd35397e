import { describe, expect, it } from 'vitest';
import { plural } from '../../src/util/text.js';

describe('plural', () => {
  it('uses the singular for exactly one, the plural otherwise', () => {
    expect(plural(1, 'epoch')).toBe('1 epoch');
    expect(plural(0, 'skipped step')).toBe('0 skipped steps');
    expect(plural(2, 'step')).toBe('2 steps');
    expect(plural(3, 'class', 'classes')).toBe('3 classes');
  });
});
