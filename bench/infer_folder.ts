/**
 * bench:infer --folder: eval and embed on a folder of JPEGs end to end (decoding included) against
 * the same extractor on the same images already decoded in memory.
 */
import { join } from 'node:path';
import { ConfigSchema } from '../src/config/schema.js';
import { decodeImages } from '../src/data/decode_cache.js';
import { loadDataSplits } from '../src/data/index.js';
import { ArrayImageDataset } from '../src/data/dataset.js';
import { embedFiles } from '../src/eval/embed.js';
import { evaluate } from '../src/eval/evaluate.js';
import type { InferenceRuntime } from '../src/eval/extractor.js';
import { extractFeatures } from '../src/eval/features.js';
import { createInference } from '../src/eval/inference.js';
import { listImages } from '../src/io/image.js';
import type { EncoderModel } from '../src/model/build.js';
import type { InferModel } from './infer_models.js';

const CLASSES = ['a', 'b'];

export async function folderBench(root: string, model: EncoderModel, spec: InferModel, batch: number, runtime: string) {
  const side = spec.imageSize;
  const files = (await Promise.all(CLASSES.map((c) => listImages(join(root, c))))).flat();
  const lines: string[] = [];
  const log = (l: string) => lines.push(l);
  const extractor = await createInference(model, { runtime: runtime as InferenceRuntime, imageSize: side, batchSize: batch, log });
  const timed = async <T>(f: () => Promise<T>): Promise<number> => {
    const t0 = performance.now();
    await f();
    return files.length / ((performance.now() - t0) / 1000);
  };
  // The first pass warms the runtime (and the OS file cache, as a second embed of a folder would find it).
  await embedFiles(extractor, files.slice(0, batch), { normalization: model.normalization, batchSize: batch });
  const embed = await timed(() => embedFiles(extractor, files, { normalization: model.normalization, batchSize: batch }));
  const decoded = await decodeImages(files, { size: side });
  const ds = new ArrayImageDataset(decoded.pixels, side, side, new Int32Array(files.length).fill(-1), []);
  const inMemoryRuns: number[] = [];
  for (let i = 0; i < 3; i++) inMemoryRuns.push(await timed(() => extractFeatures(extractor, ds, { normalization: model.normalization, batchSize: batch })));
  process.stderr.write(`[infer] in memory: ${inMemoryRuns.map((r) => r.toFixed(1)).join(', ')} img/s\n`);
  const inMemory = Math.max(...inMemoryRuns);
  extractor.dispose();
  const configFor = (cacheDir: string) =>
    ConfigSchema.parse({
      data: { kind: 'folder', root, image_size: side, cache_dir: join(root, '..', cacheDir), labelled: { test_fraction: 0.5 } },
      model: spec.config,
      engine: { inference: runtime },
      eval: { batch_size: batch },
    });
  const config = configFor('decode-cache');
  // Cold decode cache: every image is decoded once, as on a folder's first evaluation.
  const evalRate = await timed(() => evaluate({ config, linear: false, knn: true, engine: 'bench', log }));
  // The same evaluation with the images decoded beforehand (passed in memory, its own cache folder):
  // encoder set-up, runtime check and kNN on both sides, so the ratio isolates reading and decoding.
  const memoryConfig = configFor('decode-cache-memory');
  const splits = await loadDataSplits(memoryConfig.data, memoryConfig.seed);
  const evalInMemory = await timed(() => evaluate({ config: memoryConfig, data: splits, linear: false, knn: true, engine: 'bench', log: () => {} }));
  return {
    mode: 'folder',
    runtime: extractor.runtime,
    description: extractor.description,
    model: spec.label,
    images: files.length,
    batch,
    in_memory_img_per_s: inMemory,
    embed_img_per_s: embed,
    eval_img_per_s: evalRate,
    eval_in_memory_img_per_s: evalInMemory,
    embed_ratio: embed / inMemory,
    eval_ratio: evalRate / inMemory,
    eval_ratio_same_command: evalRate / evalInMemory,
    log: lines,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
  };
}
