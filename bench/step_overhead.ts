/**
 * The host cost of one training step on the CUDA engine, counted on its host build: native calls by
 * function, allocations, uploads (and their bytes), and the reads that wait for the device. The GPU's
 * own time is not measured here (the host build has none); what is counted is what the main thread
 * does per step, which decides how far a step runs ahead of a GPU.
 *
 *   node dist/bench/step_overhead.js [--arch resnet18] [--width 16] [--size 16] [--batch 4]
 *                                    [--precision fp32|mixed16] [--warmup 2]
 *
 * Counted by wrapping the addon's functions between JavaScript and the native code, so the same script
 * measures any version of the engine; where the addon keeps counters of its own (allocations of
 * scratch memory inside native calls, kernel launches, synchronisations) they are printed too. The
 * counts do not depend on the width, size or batch, only on the model's layers. The step is run the
 * way the trainer runs it (queued, its numbers collected when their copy has run, its batch staged
 * ahead where the engine can).
 */
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { tf } from '../src/engine/tf.js';
import { loadCuda } from '../src/engine/cuda/loader.js';
import { registerCudaBackend } from '../src/engine/cuda/register.js';
import { loadCudaAddon, type CudaAddon } from '../src/engine/cuda/native.js';
import { buildSslModel } from '../src/model/build.js';
import { LossScaler } from '../src/optim/loss_scale.js';
import { Sgd } from '../src/optim/sgd.js';
import * as stepModule from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';

interface Options {
  arch: Config['model']['arch'];
  width: number;
  size: number;
  batch: number;
  precision: Config['engine']['precision'];
  warmup: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { arch: 'resnet18', width: 16, size: 16, batch: 4, precision: 'fp32', warmup: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--arch') o.arch = value as Options['arch'];
    else if (flag === '--precision') o.precision = value as Options['precision'];
    else if (flag === '--width' || flag === '--size' || flag === '--batch' || flag === '--warmup') o[flag.slice(2) as 'width'] = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

/** The addon's functions wrapped to count every call, and the bytes of every upload. */
function counting(addon: CudaAddon): { proxy: CudaAddon; calls: Map<string, number>; uploadBytes: () => number; reset(): void } {
  const calls = new Map<string, number>();
  let bytes = 0;
  const proxy: Record<string, unknown> = {};
  for (const name of Object.getOwnPropertyNames(addon)) {
    const value = (addon as unknown as Record<string, unknown>)[name];
    proxy[name] =
      typeof value !== 'function'
        ? value
        : (...args: unknown[]) => {
            calls.set(name, (calls.get(name) ?? 0) + 1);
            if (name === 'upload') bytes += (args[1] as ArrayBufferView).byteLength;
            return (value as (...a: unknown[]) => unknown).apply(addon, args);
          };
  }
  return { proxy: proxy as unknown as CudaAddon, calls, uploadBytes: () => bytes, reset: () => (calls.clear(), (bytes = 0)) };
}

type StepFn = typeof stepModule.trainStep;
interface Queued {
  result: Promise<unknown>;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const loaded = await loadCuda({ flavour: 'host' });
  if (!loaded.ok) throw new Error(`the CUDA host build does not load: ${loaded.reason}`);
  const addon = loadCudaAddon('host');
  if (!addon.ok) throw new Error(addon.reason);
  const counter = counting(addon.addon);
  registerCudaBackend(counter.proxy, loaded.device, 'cuda-counted');
  await tf.setBackend('cuda-counted');
  if (!tf.env().getBool('PROD')) tf.enableProdMode();

  const cfg = ConfigSchema.parse({
    engine: { precision: o.precision },
    model: { arch: o.arch, stem: 'cifar', width: o.width },
    method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 },
  });
  const model = buildSslModel(cfg.model, cfg.method, 0, { precision: o.precision });
  const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true });
  const scaler = o.precision === 'mixed16' ? new LossScaler() : undefined;
  const rng = new Rng('step-overhead', 0);
  const views = () => [0, 1].map(() => Float32Array.from({ length: o.batch * o.size * o.size * 3 }, () => rng.normal()));
  const backend = tf.backend() as unknown as { stageUpload?: (v: Float32Array) => Promise<void> };
  const queue = (stepModule as unknown as Record<string, unknown>)['queueTrainStep'] as ((...a: Parameters<StepFn>) => Queued) | undefined;
  const own = addon.addon as Partial<Pick<CudaAddon, 'counters' | 'resetCounters'>>;
  const step = async (): Promise<void> => {
    const v = views();
    if (backend.stageUpload) await Promise.all(v.map((a) => backend.stageUpload!(a)));
    const args: Parameters<StepFn> = [model.method, model.store, opt, v, o.size, () => 0.01, { scaler }];
    if (queue) await queue(...args).result;
    else stepModule.trainStep(...args);
  };
  for (let i = 0; i < o.warmup; i++) await step();
  counter.reset();
  own.resetCounters?.();
  await step();
  const calls = [...counter.calls].sort((a, b) => b[1] - a[1]);
  const total = calls.reduce((a, [, n]) => a + n, 0);
  const n = (name: string) => counter.calls.get(name) ?? 0;
  const summary = {
    arch: o.arch,
    precision: o.precision,
    native_calls: total,
    allocs: n('alloc'),
    uploads: n('upload') + n('uploadStaged'),
    zero_fills: n('zero'),
    staged_uploads: n('uploadStaged'),
    upload_bytes_on_main_thread: counter.uploadBytes(),
    blocking_reads: n('download') + n('synchronize'),
    async_reads: n('readAsync') + n('recordEvent'),
    native: own.counters ? (({ calls: _calls, ...rest }) => rest)(own.counters()) : null,
  };
  console.log(`one ${o.arch} step (${o.precision}, CUDA host build): ${total} native calls, ${summary.allocs} allocations, ${summary.uploads} uploads (${summary.upload_bytes_on_main_thread} bytes copied on the main thread), ${summary.blocking_reads} blocking reads`);
  console.log(`calls: ${calls.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (summary.native) console.log(`inside the addon: ${JSON.stringify(summary.native)}`);
  console.log(JSON.stringify(summary));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
