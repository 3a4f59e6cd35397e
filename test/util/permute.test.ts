import { tf } from '../../src/engine/tf.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { permuteArray } from '../../src/util/permute.js';
import { Rng } from '../../src/util/rng.js';
import { useCpuBackend } from '../helpers.js';

beforeAll(useCpuBackend);

describe('permuteArray', () => {
  const cases: Array<[number[], number[]]> = [
    [[3, 3, 5, 7], [3, 2, 0, 1]], // HWIO -> OIHW
    [[7, 5, 3, 3], [2, 3, 1, 0]], // OIHW -> HWIO
    [[4, 6], [1, 0]],
    [[2, 3, 4], [1, 2, 0]],
    [[2, 3, 4, 5, 6], [4, 0, 3, 1, 2]],
    [[1, 1, 8, 1], [3, 2, 0, 1]],
    [[1, 1, 40, 24], [3, 2, 0, 1]], // a 1x1 conv: a 2D transpose over several tiles
    [[2, 1, 3], [2, 1, 0]],
    [[5, 1, 4], [1, 0, 2]], // only a size-1 axis moves: a copy
    [[5], [0]],
    [[3, 0, 2], [2, 0, 1]],
  ];
  it.each(cases)('equals tf.transpose for shape %j and perm %j', (shape, perm) => {
    const rng = new Rng('permute', shape.join('x'));
    const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next() - 0.5);
    const expected = tf.tidy(() => tf.transpose(tf.tensor(values, shape), perm).dataSync());
    const got = permuteArray(values, shape, perm);
    expect(Array.from(got)).toEqual(Array.from(expected));
  });

  it('keeps a scalar', () => {
    expect(Array.from(permuteArray(Float32Array.of(2.5), [], []))).toEqual([2.5]);
  });

  it('rejects a non-permutation and a wrong length', () => {
    expect(() => permuteArray(new Float32Array(6), [2, 3], [0, 0])).toThrow(/not a permutation/);
    expect(() => permuteArray(new Float32Array(5), [2, 3], [1, 0])).toThrow(/5 values for shape \[2, 3\]/);
  });
});
