import { describe, expect, it } from 'vitest';
import { ArrayImageDataset, emptyDataset } from '../../src/data/dataset.js';

describe('ArrayImageDataset.select', () => {
  // 4 items of 1x1 pixels whose bytes are their index; groups a, b, a, c.
  const ds = new ArrayImageDataset(
    Uint8Array.from({ length: 12 }, (_, i) => Math.floor(i / 3)),
    1,
    1,
    Int32Array.from([5, 6, 7, 8]),
    ['x'],
    { groups: Int32Array.from([0, 1, 0, 2]), groupNames: ['a', 'b', 'c'], sources: ['p0', 'p1', 'p2', 'p3'] },
  );

  it('copies the chosen items in order with their labels and sources', () => {
    const sub = ds.select([3, 0]);
    expect([...sub.image(0), ...sub.image(1)]).toEqual([3, 3, 3, 0, 0, 0]);
    expect([...sub.labels]).toEqual([8, 5]);
    expect(sub.sources).toEqual(['p3', 'p0']);
    expect(sub.pixels.buffer).not.toBe(ds.pixels.buffer);
  });

  it('renumbers groups to the ones present, in their original order', () => {
    const sub = ds.select([3, 2, 0]);
    expect(sub.groupNames).toEqual(['a', 'c']);
    expect([...sub.groups!]).toEqual([1, 0, 0]);
  });

  it('makes an empty dataset of a given size', () => {
    const e = emptyDataset(4, 4);
    expect([e.size, e.height, e.classNames.length]).toEqual([0, 4, 0]);
    expect(() => e.image(0)).toThrow(RangeError);
  });
});
