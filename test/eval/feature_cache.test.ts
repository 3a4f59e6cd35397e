import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachedFeatures, FeatureCache, type FeatureCacheKey } from '../../src/eval/feature_cache.js';
import { roundToFloat16 } from '../../src/io/float16.js';
import { readNpy } from '../../src/io/npy.js';
import { tempDir } from '../io/tmp.js';

const KEY: FeatureCacheKey = { encoder: { checkpoint: { path: 'a', size: 1, mtime_ms: 2 } }, data: { kind: 'synthetic' }, split: 'train', count: 2, dim: 3, normalization: { mean: [0, 0, 0] } };
const VALUES = Float32Array.from([0.1, 1 / 3, -2.71828, 1000.06, 0, 5e-8]);

function counter(values = VALUES) {
  let calls = 0;
  return { extract: async () => (calls++, Float32Array.from(values)), calls: () => calls };
}

describe('feature cache', () => {
  it('without a cache the features pass through unrounded', async () => {
    const c = counter();
    const { x, hit } = await cachedFeatures(undefined, KEY, c.extract);
    expect(hit).toBe(false);
    expect([...x]).toEqual([...VALUES]);
  });

  it('stores float16 .npy [count, dim] and serves the same rounded values on the next call', async () => {
    const cache = new FeatureCache(join(tempDir(), 'features'));
    const c = counter();
    const first = await cachedFeatures(cache, KEY, c.extract);
    expect(first.hit).toBe(false);
    expect([...first.x]).toEqual([...VALUES].map(roundToFloat16));
    const npy = await readNpy(join(cache.dir, 'train.npy'));
    expect(npy.dtype).toBe('float16');
    expect(npy.shape).toEqual([2, 3]);
    const second = await cachedFeatures(cache, KEY, c.extract);
    expect(second.hit).toBe(true);
    expect(c.calls()).toBe(1);
    expect([...second.x]).toEqual([...first.x]);
  });

  it('misses when any part of the key changes, or the array is damaged, and replaces the entry', async () => {
    const cache = new FeatureCache(join(tempDir(), 'features'));
    const c = counter();
    await cachedFeatures(cache, KEY, c.extract);
    for (const changed of [{ ...KEY, encoder: { checkpoint: { path: 'a', size: 1, mtime_ms: 3 } } }, { ...KEY, data: { kind: 'cifar10' } }, { ...KEY, normalization: { mean: [1, 0, 0] } }]) {
      expect(await cache.get(changed)).toBeUndefined();
    }
    expect(await cache.get({ ...KEY, split: 'test' })).toBeUndefined();
    writeFileSync(join(cache.dir, 'train.npy'), 'garbage');
    const again = await cachedFeatures(cache, KEY, c.extract);
    expect(again.hit).toBe(false);
    expect(c.calls()).toBe(2);
    expect(JSON.parse(readFileSync(join(cache.dir, 'train.json'), 'utf8')).key).toEqual(KEY);
    expect((await cachedFeatures(cache, KEY, c.extract)).hit).toBe(true);
  });

  it('refuses values beyond the float16 range instead of caching infinities', async () => {
    const cache = new FeatureCache(join(tempDir(), 'features'));
    await expect(cachedFeatures(cache, KEY, counter(Float32Array.from([1, 2, 3, 4, 5, 70000])).extract)).rejects.toThrow(/features of the train split cannot be cached as float16 .*beyond the float16 range.*without the feature cache/);
  });
});
