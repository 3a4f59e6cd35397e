import { describe, expect, it } from 'vitest';
import { emptyDataset } from '../../src/data/dataset.js';
import { gridNeighbourLists, ListNeighbourIndex, packNeighbours } from '../../src/data/neighbours.js';

const pool = (n: number) => ({ ...emptyDataset(1, 1), size: n }) as ReturnType<typeof emptyDataset>;

describe('gridNeighbourLists', () => {
  it('finds the existing cells of the 8-neighbourhood on the same slide only', () => {
    const positions = [
      { slide: 0, x: 0, y: 0 },
      { slide: 0, x: 1, y: 1 },
      { slide: 0, x: 2, y: 2 },
      { slide: 1, x: 1, y: 0 },
      { slide: 0, x: 3, y: 0 },
    ];
    expect(gridNeighbourLists(positions)).toEqual([[1], [0, 2], [1], [], []]);
  });

  it('rejects two items on one cell', () => {
    expect(() => gridNeighbourLists([{ slide: 0, x: 0, y: 0 }, { slide: 0, x: 0, y: 0 }])).toThrow(/two items at slide 0 cell \(0, 0\)/);
  });
});

describe('ListNeighbourIndex', () => {
  const { offsets, targets } = packNeighbours([[1, 2], [], [0]]);
  const index = new ListNeighbourIndex(offsets, targets, pool(5));

  it('counts, lists and isolates', () => {
    expect([index.count(0), index.count(1), index.count(2)]).toEqual([2, 0, 1]);
    expect([...index.neighboursOf(0)]).toEqual([1, 2]);
    expect(index.isolated).toBe(1);
    expect(index.sample(1, 0, 0)).toBe(1);
    expect(index.sample(2, 0, 0)).toBe(0);
    expect(() => index.count(3)).toThrow(RangeError);
  });

  it('draws per (seed, epoch, item), differently across epochs and seeds', () => {
    const draws = (seed: number) => Array.from({ length: 64 }, (_, e) => index.sample(0, seed, e));
    expect(draws(1)).toEqual(draws(1));
    expect(new Set(draws(1))).toEqual(new Set([1, 2]));
    expect(draws(2)).not.toEqual(draws(1));
  });

  it('rejects targets outside the pool', () => {
    const bad = packNeighbours([[7]]);
    expect(() => new ListNeighbourIndex(bad.offsets, bad.targets, pool(5))).toThrow(/neighbour 7 out of range/);
  });
});
