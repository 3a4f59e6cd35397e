/**
 * Extracted features cached on disk as float16 .npy (`<run>/features/<split>.npy`), so evaluating again
 * (other label fractions, another protocol) skips the encoder, the slow part on a CPU.
 *
 * Each array has a JSON sidecar holding the key it was made with: the encoder file (path, size,
 * modification time) or the model config, the data config, the split, its size and the input
 * normalisation. A cached array is used only when the key matches exactly, else it is extracted again
 * and replaced. The sidecar is written after the array, so a torn write is never taken for a hit.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { roundToFloat16InPlace } from '../io/float16.js';
import { readNpy, writeNpy } from '../io/npy.js';
import { UserError } from '../util/errors.js';

export interface FeatureCacheKey {
  encoder: unknown;
  data: unknown;
  split: string;
  count: number;
  dim: number;
  normalization: unknown;
}

/** What identifies an encoder file: a new checkpoint at the same path must miss the cache. */
export async function fileIdentity(path: string): Promise<{ path: string; size: number; mtime_ms: number }> {
  const s = await stat(path);
  return { path, size: s.size, mtime_ms: s.mtimeMs };
}

export class FeatureCache {
  constructor(readonly dir: string) {}

  private files(split: string): { npy: string; key: string } {
    return { npy: join(this.dir, `${split}.npy`), key: join(this.dir, `${split}.json`) };
  }

  /** The cached features for `key`, or undefined when absent, stale or unreadable. */
  async get(key: FeatureCacheKey): Promise<Float32Array | undefined> {
    const files = this.files(key.split);
    try {
      const stored = JSON.parse(await readFile(files.key, 'utf8')) as { key?: unknown };
      if (JSON.stringify(stored.key) !== JSON.stringify(key)) return undefined;
      const npy = await readNpy(files.npy);
      if (npy.shape.length !== 2 || npy.shape[0] !== key.count || npy.shape[1] !== key.dim) return undefined;
      return npy.toFloat32();
    } catch {
      // A missing or damaged cache entry is a miss: the features are extracted again.
      return undefined;
    }
  }

  async put(key: FeatureCacheKey, x: Float32Array): Promise<void> {
    const files = this.files(key.split);
    await writeNpy(files.npy, x, [key.count, key.dim], 'float16');
    await writeFileAtomic(files.key, `${JSON.stringify({ key, created: new Date().toISOString() }, null, 2)}\n`);
  }
}

/**
 * Features as the cached run sees them: rounded to float16 even on the extracting run, so the first
 * evaluation and every cached one fit their probes on identical numbers.
 */
export async function cachedFeatures(cache: FeatureCache | undefined, key: FeatureCacheKey, extract: () => Promise<Float32Array>): Promise<{ x: Float32Array; hit: boolean }> {
  if (!cache) return { x: await extract(), hit: false };
  const hit = await cache.get(key);
  if (hit) return { x: hit, hit: true };
  const x = await extract();
  try {
    // Written before rounding: the writer refuses values beyond the float16 range rather than store Inf.
    await cache.put(key, x);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    throw new UserError(`features of the ${key.split} split cannot be cached as float16 (${err.message}); evaluate without the feature cache`);
  }
  return { x: roundToFloat16InPlace(x), hit: false };
}
