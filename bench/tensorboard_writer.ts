/**
 * What writing TensorBoard events costs a training run, measured on the integrated path: the real
 * trainer (train()) on the active engine, with logging.tensorboard's log (TensorBoardTrainingLog, as
 * the CLI passes it) and without, in one process, alternating. The worst case is set up: a metrics
 * record every step (train.log_every 1) and a view grid at the start of every epoch (knn_every 1).
 *
 *   npm run bench:tensorboard -- [--engine auto] [--arch resnet18] [--width 16] [--size 32] [--batch 64] [--steps 6] [--epochs 2] [--rounds 2]
 *
 * (--width 16 --size 32 --batch 64 is the demo's model: short steps, where a fixed cost per step
 * weighs most; --width 64 is the SimSiam CIFAR model.)
 *
 * Measured:
 * - the time spent in the log (every call the trainer makes to it, and the writer's own timed
 *   flushes), per step and per view grid, against the median step time: the target (issue 19) is
 *   under 2 % of a step on the CPU engine;
 * - the median step with and without the log (an A/B on a shared machine: noisy, printed as ranges);
 * - tensor reads (dataSync, data, arraySync, array) per run with and without the log: the log must
 *   add none, so a GPU step pays nothing for it beyond the scalars the trainer reads anyway.
 *
 * Prints a table, then one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { initEngine, type EngineInfo, type EngineName } from '../src/engine/engine.js';
import { tf } from '../src/engine/tf.js';
import { TensorBoardTrainingLog } from '../src/report/tensorboard/training_log.js';
import { TensorBoardWriter } from '../src/report/tensorboard/writer.js';
import type { TrainingLog } from '../src/train/metrics_log.js';
import { train } from '../src/train/trainer.js';

interface Options {
  engine: EngineName;
  arch: Config['model']['arch'];
  width: number;
  size: number;
  batch: number;
  steps: number;
  epochs: number;
  rounds: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { engine: 'auto', arch: 'resnet18', width: 16, size: 32, batch: 64, steps: 6, epochs: 2, rounds: 2 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--engine') o.engine = value as EngineName;
    else if (flag === '--arch') o.arch = value as Options['arch'];
    else if (['--width', '--size', '--batch', '--steps', '--epochs', '--rounds'].includes(flag)) (o as unknown as Record<string, number>)[flag.slice(2)] = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;

/** Counts the tensor reads (a GPU sync each) made while `on` is true, and all of them. */
function countTensorReads(): { total: () => number; reset: () => void } {
  let n = 0;
  const proto = tf.Tensor.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['dataSync', 'data', 'arraySync', 'array']) {
    const original = proto[name]!;
    proto[name] = function (this: unknown, ...args: unknown[]) {
      n++;
      return original.apply(this, args);
    };
  }
  return { total: () => n, reset: () => void (n = 0) };
}

/** Where the log's time goes: every call the trainer makes, and the writer's timed flushes between them. */
class Timing {
  perStep = 0;
  grids: number[] = [];
  once = 0;
  private inLog = false;

  constructor() {
    const proto = TensorBoardWriter.prototype as unknown as { flush: () => void };
    const flush = proto.flush;
    const timing = this;
    proto.flush = function (this: TensorBoardWriter) {
      if (timing.inLog) return flush.call(this);
      const t0 = performance.now();
      flush.call(this);
      timing.perStep += performance.now() - t0;
    };
  }

  /** `log` with each method timed into its bucket. */
  wrap(log: TensorBoardTrainingLog): TrainingLog {
    const time = <T>(bucket: 'perStep' | 'grid' | 'once', f: () => T): T => {
      this.inLog = true;
      const t0 = performance.now();
      try {
        return f();
      } finally {
        const ms = performance.now() - t0;
        this.inLog = false;
        if (bucket === 'grid') this.grids.push(ms);
        else this[bucket] += ms;
      }
    };
    const timeAsync = async (bucket: 'perStep' | 'once', f: () => Promise<void>) => {
      this.inLog = true;
      const t0 = performance.now();
      try {
        await f();
      } finally {
        this.inLog = false;
        this[bucket] += performance.now() - t0;
      }
    };
    return {
      resumeAt: (step) => timeAsync('once', () => log.resumeAt(step)),
      started: (run) => time('once', () => log.started(run)),
      append: (record) => time('perStep', () => log.append(record)),
      views: (batch) => time('grid', () => log.views(batch)),
      flush: () => timeAsync('perStep', () => log.flush()),
      close: () => timeAsync('once', () => log.close()),
    };
  }
}

interface RunResult {
  stepMs: number[];
  reads: number;
  wallMs: number;
}

async function runOnce(o: Options, engine: EngineInfo, logs: TrainingLog[], reads: ReturnType<typeof countTensorReads>, dir: string): Promise<RunResult> {
  const config = ConfigSchema.parse({
    name: 'bench-tb',
    seed: 0,
    data: { kind: 'synthetic', image_size: o.size, synthetic: { train_size: o.batch * o.steps, test_size: 64, size: o.size } },
    model: { arch: o.arch, width: o.width, stem: o.size <= 64 && !o.arch.startsWith('bit-') ? 'cifar' : 'imagenet' },
    method: { name: 'simsiam', proj_layers: 2, proj_dim: 256, pred_hidden: 64 },
    train: { epochs: o.epochs, batch_size: o.batch, log_every: 1, knn_every: 1, knn_limit: 64, checkpoint_every: 100 },
    eval: { batch_size: 64, knn: { k: 5 } },
  });
  const stamps: number[] = [];
  const quiet = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
  reads.reset();
  const t0 = performance.now();
  stamps.push(t0);
  await train({ config, runDir: dir, resume: false, engine, log: () => undefined, progressStream: quiet, logs, onStep: () => stamps.push(performance.now()) });
  const wallMs = performance.now() - t0;
  // Step times within epochs (an epoch's first step also waits for its first batch; the last step of
  // an epoch is followed by the kNN check and the checkpoint, which are not steps).
  const stepMs: number[] = [];
  for (let i = 1; i < stamps.length; i++) if ((i - 1) % o.steps !== 0) stepMs.push(stamps[i]! - stamps[i - 1]!);
  return { stepMs, reads: reads.total(), wallMs };
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const engine = await initEngine(o.engine, { training: true });
  const reads = countTensorReads();
  const timing = new Timing();
  const root = await mkdtemp(join(os.tmpdir(), 'simtrip-bench-tb-'));
  const without: RunResult[] = [];
  const withTb: RunResult[] = [];
  try {
    // Warm-up: the engine's kernels and caches, once, untimed.
    await runOnce({ ...o, steps: 2, epochs: 1 }, engine, [], reads, join(root, 'warm'));
    for (let r = 0; r < o.rounds; r++) {
      without.push(await runOnce(o, engine, [], reads, join(root, `off-${r}`)));
      const dir = join(root, `on-${r}`);
      withTb.push(await runOnce(o, engine, [timing.wrap(new TensorBoardTrainingLog(dir))], reads, dir));
      process.stderr.write(`round ${r + 1}/${o.rounds}: step ${median(without.at(-1)!.stepMs).toFixed(0)} ms without, ${median(withTb.at(-1)!.stepMs).toFixed(0)} ms with TensorBoard\n`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const steps = o.rounds * o.steps * o.epochs;
  const stepOn = median(withTb.flatMap((r) => r.stepMs));
  const stepOff = median(without.flatMap((r) => r.stepMs));
  const perStepMs = timing.perStep / steps;
  const gridMs = median(timing.grids);
  const result = {
    engine: engine.engine,
    engine_detail: engine.detail,
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}`,
    model: `SimSiam ${o.arch} width ${o.width}, ${o.size}px, batch ${o.batch}; ${o.rounds} rounds of ${o.epochs} epochs x ${o.steps} steps, a metrics record every step`,
    step_ms: stepOn,
    /** The log's time per step: the record's events, the flushes (timed and at checkpoints). */
    events_ms_per_step: perStepMs,
    events_share_of_step: perStepMs / stepOn,
    /** A view grid (the first step, then every knn_every epochs): de-normalising, PNG, the event. */
    view_grid_ms: gridMs,
    view_grid_share_of_step: gridMs / stepOn,
    /** Opening (resume purge), config and run.json texts, closing: once per run. */
    once_per_run_ms: timing.once / o.rounds,
    step_ms_without: stepOff,
    step_ms_range_with: range(withTb.flatMap((r) => r.stepMs)),
    step_ms_range_without: range(without.flatMap((r) => r.stepMs)),
    tensor_reads_per_run_with: withTb.map((r) => r.reads),
    tensor_reads_per_run_without: without.map((r) => r.reads),
  };
  const row = (k: string, v: string) => process.stdout.write(`${k.padEnd(16)} ${v}\n`);
  row('engine', `${result.engine} (${result.engine_detail})`);
  row('machine', result.machine);
  row('run', result.model);
  row('step', `${stepOn.toFixed(1)} ms median with TensorBoard (${result.step_ms_range_with}), ${stepOff.toFixed(1)} ms without (${result.step_ms_range_without})`);
  row('events', `${(perStepMs * 1000).toFixed(0)} us per step = ${(100 * result.events_share_of_step).toFixed(3)} % of a step (target < 2 %)`);
  row('view grid', `${gridMs.toFixed(1)} ms each = ${(100 * result.view_grid_share_of_step).toFixed(2)} % of one step, once per knn_every epochs`);
  row('once per run', `${result.once_per_run_ms.toFixed(1)} ms (open, texts, close)`);
  row('tensor reads', `${result.tensor_reads_per_run_with.join(', ')} per run with, ${result.tensor_reads_per_run_without.join(', ')} without`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main();
