/**
 * What writing TensorBoard events costs a training step, against the step itself, in one process:
 * SimSiam training steps on the active engine (default: the SimSiam CIFAR model, ResNet-18 at 32 px,
 * batch 64), each followed by what a step logs in the worst case (train.log_every 1): the metrics
 * record's scalars as one event, flushed to disk at once. The grid of training views (first step and
 * every knn_every epochs) is timed on its own: de-normalising, laying out, PNG-encoding and writing.
 *
 *   npm run bench:tensorboard -- [--engine auto] [--arch resnet18] [--width 64] [--size 32] [--batch 64] [--steps 5] [--warmup 1]
 *
 * (--width 16 is the demo's model: its short steps are where a fixed cost per step weighs most.)
 *
 * The target (issue 19) is under 2 % of a step on the CPU engine. Prints a table, then one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { augmentBatch } from '../src/data/augment.js';
import { makeSynthetic } from '../src/data/synthetic.js';
import { initEngine, type EngineName } from '../src/engine/engine.js';
import { buildSslModel } from '../src/model/build.js';
import { Sgd } from '../src/optim/sgd.js';
import { TAGS } from '../src/report/tensorboard/tags.js';
import { TensorBoardWriter } from '../src/report/tensorboard/writer.js';
import { viewGridPng } from '../src/report/view_grid.js';
import { trainStep } from '../src/train/step.js';

interface Options {
  engine: EngineName;
  arch: Config['model']['arch'];
  width: number;
  size: number;
  batch: number;
  steps: number;
  warmup: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { engine: 'auto', arch: 'resnet18', width: 64, size: 32, batch: 64, steps: 5, warmup: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--engine') o.engine = value as EngineName;
    else if (flag === '--arch') o.arch = value as Options['arch'];
    else if (['--width', '--size', '--batch', '--steps', '--warmup'].includes(flag)) o[flag.slice(2) as 'width' | 'size' | 'batch' | 'steps' | 'warmup'] = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const engine = await initEngine(o.engine, { training: true });
  const cfg = ConfigSchema.parse({
    data: { image_size: o.size },
    model: { arch: o.arch, width: o.width, stem: o.size <= 64 && !o.arch.startsWith('bit-') ? 'cifar' : 'imagenet' },
    method: { name: 'simsiam', proj_layers: 2, proj_dim: 2048, pred_hidden: 512 },
  });
  const ds = makeSynthetic({ size: o.size, count: o.batch, seed: 0, split: 'train' });
  const model = buildSslModel(cfg.model, cfg.method, 0);
  const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true });
  const idx = Int32Array.from({ length: o.batch }, (_, i) => i);
  const dir = await mkdtemp(join(os.tmpdir(), 'simtrip-bench-tb-'));
  const tb = await TensorBoardWriter.open(dir);
  const stepMs: number[] = [];
  const logMs: number[] = [];
  let views: Float32Array[] = [];
  try {
    for (let i = 0; i < o.warmup + o.steps; i++) {
      views = augmentBatch(ds, idx, o.size, cfg.data.augment, model.normalization, { seed: 0, epoch: i }, 2);
      let t0 = performance.now();
      const out = trainStep(model.method, model.store, opt, views, o.size, () => 0.05);
      const step = performance.now() - t0;
      // What the trainer's metrics record holds at log_every 1, written and flushed at once.
      t0 = performance.now();
      tb.metrics({ kind: 'train', step: i + 1, epoch: 1, lr: 0.05, loss: out.loss, collapse_std: out.collapseStd, img_per_s: o.batch / (step / 1000), data_wait_ms: 0.1, time: new Date().toISOString() });
      tb.flush();
      const log = performance.now() - t0;
      if (i >= o.warmup) {
        stepMs.push(step);
        logMs.push(log);
      }
      process.stderr.write(`step ${i + 1}/${o.warmup + o.steps}${i < o.warmup ? ' (warm-up)' : ''}: ${step.toFixed(0)} ms step, ${(log * 1000).toFixed(0)} us events\n`);
    }
    // The same record many times, buffered as between flushes: the per-record cost without disk noise.
    const records = 20_000;
    let t0 = performance.now();
    for (let i = 0; i < records; i++) tb.metrics({ kind: 'train', step: 1000 + i, epoch: 2, lr: 0.05, loss: -0.5, collapse_std: 0.02, img_per_s: 100, data_wait_ms: 0.1 });
    tb.flush();
    const perRecordUs = ((performance.now() - t0) * 1000) / records;
    // The view grid: 8 items x 2 views, de-normalised, laid out, PNG-encoded and written.
    t0 = performance.now();
    tb.image(TAGS.views, 1, viewGridPng(views, o.size, model.normalization));
    tb.flush();
    const gridMs = performance.now() - t0;
    tb.close();
    const step = median(stepMs);
    const log = median(logMs);
    const result = {
      engine: engine.engine,
      engine_detail: engine.detail,
      machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}`,
      model: `SimSiam ${o.arch} width ${o.width}, ${cfg.model.stem} stem, ${o.size}px, batch ${o.batch}`,
      step_ms: step,
      /** One step's events, written and flushed (train.log_every 1, the most a step logs). */
      events_ms_per_step: log,
      events_share_of_step: log / step,
      /** A record's scalars encoded and buffered, averaged over many. */
      record_us: perRecordUs,
      /** The view grid (first step, then every knn_every epochs): milliseconds each time. */
      view_grid_ms: gridMs,
      view_grid_share_of_step: gridMs / step,
    };
    const row = (k: string, v: string) => process.stdout.write(`${k.padEnd(14)} ${v}\n`);
    row('engine', `${result.engine} (${result.engine_detail})`);
    row('machine', result.machine);
    row('model', result.model);
    row('step', `${step.toFixed(1)} ms (median of ${o.steps})`);
    row('events', `${(log * 1000).toFixed(0)} us per step written and flushed = ${(100 * result.events_share_of_step).toFixed(3)} % of a step (target < 2 %)`);
    row('per record', `${perRecordUs.toFixed(1)} us encoded and buffered`);
    row('view grid', `${gridMs.toFixed(1)} ms each (${(100 * result.view_grid_share_of_step).toFixed(2)} % of one step; once at the start and every knn_every epochs)`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    tb.close();
    model.store.dispose();
    opt.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
