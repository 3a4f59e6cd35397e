import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AugmentSchema } from '../../src/config/schema.js';
import { augmentBatch, augmentViews } from '../../src/data/augment.js';
import { AugmentPool, augmentBatchParallel, augmentViewsParallel, createAugmentPool } from '../../src/data/parallel_augment.js';
import { makeSynthetic } from '../../src/data/synthetic.js';

const same = (a: Float32Array[], b: Float32Array[]) =>
  a.length === b.length && a.every((x, i) => Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(b[i]!.buffer, b[i]!.byteOffset, b[i]!.byteLength)));

describe('parallel augmentation', () => {
  // 40 px sources augmented to 36 px: blur is on (>= 32 px with blur_prob 1 below), crops resample.
  const ds = makeSynthetic({ size: 40, count: 30, seed: 3, split: 'train' });
  const cfg = AugmentSchema.parse({ blur_prob: 0.5 });
  const key = { seed: 11, epoch: 2 };
  let pool: AugmentPool;

  beforeAll(async () => {
    pool = await AugmentPool.create(2);
  });
  afterAll(async () => {
    await pool.close();
  });

  it('is bit-identical to the in-process path, for SimSiam batches and SimTriplet view lists', async () => {
    // 13 rows: slices of unequal length; repeated items within a batch.
    const indices = Int32Array.from([5, 0, 29, 7, 7, 12, 3, 18, 22, 1, 9, 16, 5]);
    const local = augmentBatch(ds, indices, 36, cfg, 'imagenet', key, 2);
    const remote = await augmentBatchParallel(ds, indices, 36, cfg, 'imagenet', key, 2, pool);
    expect(remote).toHaveLength(2);
    expect(same(remote, local)).toBe(true);
    // The two views differ (so equality above is not of two copies of one view).
    expect(same([remote[0]!], [remote[1]!])).toBe(false);

    const anchors = Int32Array.from([4, 8, 15, 16, 23, 4]);
    const neighbours = Int32Array.from([5, 9, 14, 17, 22, 3]);
    const lists = [anchors, neighbours, anchors];
    const triplet = await augmentViewsParallel(ds, lists, 24, cfg, 'bit', key, pool);
    expect(same(triplet, augmentViews(ds, lists, 24, cfg, 'bit', key))).toBe(true);
    const pairs = [anchors, neighbours];
    expect(same(await augmentViewsParallel(ds, pairs, 24, cfg, 'bit', key, pool), augmentViews(ds, pairs, 24, cfg, 'bit', key))).toBe(true);
    // Another epoch draws other views.
    const next = await augmentViewsParallel(ds, lists, 24, cfg, 'bit', { ...key, epoch: 3 }, pool);
    expect(same(next, triplet)).toBe(false);
  });

  it('keeps batches apart when several are in flight at once', async () => {
    const a = Int32Array.from({ length: 17 }, (_, i) => i);
    const b = Int32Array.from({ length: 11 }, (_, i) => 29 - i);
    const [ra, rb] = await Promise.all([
      augmentBatchParallel(ds, a, 32, cfg, 'imagenet', key, 2, pool),
      augmentBatchParallel(ds, b, 32, cfg, 'imagenet', { seed: 1, epoch: 0 }, 3, pool),
    ]);
    expect(same(ra, augmentBatch(ds, a, 32, cfg, 'imagenet', key, 2))).toBe(true);
    expect(same(rb, augmentBatch(ds, b, 32, cfg, 'imagenet', { seed: 1, epoch: 0 }, 3))).toBe(true);
  });

  it('passes a worker-side error to the caller and stays usable', async () => {
    const idx = Int32Array.from([1, 2, 3]);
    const err = await augmentBatchParallel(ds, idx, 16, cfg, 'nope' as 'bit', key, 2, pool).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/augmentation worker: .*unknown normalization 'nope'/);
    const ok = await augmentBatchParallel(ds, idx, 16, cfg, 'bit', key, 2, pool);
    expect(same(ok, augmentBatch(ds, idx, 16, cfg, 'bit', key, 2))).toBe(true);
    // Mismatched view lists are refused before anything is sent.
    await expect(pool.augmentViews(ds, [idx, idx.subarray(1)], 16, cfg, 'bit', key)).rejects.toThrow(/view 1 lists 2 items, view 0 lists 3/);
  });

  it('data.workers 0 augments in-process; a closed pool refuses work', async () => {
    expect(await createAugmentPool(0)).toBeUndefined();
    const idx = Int32Array.from([0, 1]);
    expect(same(await augmentBatchParallel(ds, idx, 16, cfg, 'bit', key, 2, undefined), augmentBatch(ds, idx, 16, cfg, 'bit', key, 2))).toBe(true);
    const one = (await createAugmentPool(1))!;
    expect(one.size).toBe(1);
    expect(same(await augmentBatchParallel(ds, idx, 16, cfg, 'bit', key, 2, one), augmentBatch(ds, idx, 16, cfg, 'bit', key, 2))).toBe(true);
    await one.close();
    await expect(augmentBatchParallel(ds, idx, 16, cfg, 'bit', key, 2, one)).rejects.toThrow(/closed/);
    await expect(AugmentPool.create(0)).rejects.toThrow(/at least one worker/);
  });
});
