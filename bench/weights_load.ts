/**
 * Pretrained-weight loading time for a BiT-R50x1-sized .npz: the bench writes one (random values in
 * the official key layout, ImageNet-1k head, stored zip like BiT's files) and times what users hit:
 * `simtrip weights inspect` (headers only), loadWeights into the GroupNorm model (every array but the
 * head) and into the BatchNorm variant (conv kernels only), each best of --repeat, plus peak RSS.
 *
 *   npm run bench:weights -- [--repeat 3] [--arch bit-r50x1]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSchema } from '../src/config/schema.js';
import { initEngine } from '../src/engine/engine.js';
import { bitSpecOf, buildEncoder } from '../src/model/build.js';
import { inspectWeights } from '../src/model/inspect.js';
import { loadWeights } from '../src/model/weights.js';
import { bitNpzArrays, npzBytes, randomValues } from '../test/model/bit_files.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function best(repeat: number, fn: () => Promise<void>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    await fn();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

async function main(): Promise<void> {
  const repeat = Number(option('repeat', '3'));
  const arch = option('arch', 'bit-r50x1') as 'bit-r50x1';
  const engine = await initEngine('auto', { training: false });
  const dir = mkdtempSync(join(tmpdir(), 'simtrip-bench-weights-'));
  try {
    const { depths, widthFactor } = bitSpecOf(arch);
    const arrays = bitNpzArrays({ depths, widthFactor, numClasses: 1000 });
    const path = join(dir, `BiT-S-${arch.slice(4).toUpperCase()}.npz`);
    const bytes = npzBytes(arrays, randomValues(arrays, 0));
    writeFileSync(path, bytes);
    const sizeMb = bytes.length / 2 ** 20;

    const inspectMs = await best(repeat, async () => {
      await inspectWeights(path);
    });
    // The model is built once per norm outside the timing: its random initialisation is not loading.
    const loadInto = async (norm: 'group' | 'batch') => {
      const { store } = buildEncoder(ConfigSchema.parse({ model: { arch, stem: 'imagenet', norm } }).model, 0);
      try {
        return await best(repeat, async () => {
          await loadWeights(store, path, { arch });
        });
      } finally {
        store.dispose();
      }
    };
    const groupMs = await loadInto('group');
    const batchMs = await loadInto('batch');
    const result = {
      engine: engine.engine,
      file: `${arch} npz, ${arrays.length} arrays, ${sizeMb.toFixed(1)} MiB (stored zip, f4, 1000-class head)`,
      inspect_ms: inspectMs,
      load_group_norm_ms: groupMs,
      load_batch_norm_ms: batchMs,
      load_mib_per_s: sizeMb / (groupMs / 1000),
      peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    };
    const row = (k: string, v: string) => process.stdout.write(`${k.padEnd(22)} ${v}\n`);
    row('file', result.file);
    row('weights inspect', `${inspectMs.toFixed(0)} ms (headers only)`);
    row('load, norm group', `${groupMs.toFixed(0)} ms (every array but the head; ${result.load_mib_per_s.toFixed(0)} MiB/s of file)`);
    row('load, norm batch', `${batchMs.toFixed(0)} ms (conv kernels only)`);
    row('peak RSS', `${result.peak_rss_mib.toFixed(0)} MiB`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
