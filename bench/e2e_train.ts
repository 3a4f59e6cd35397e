/**
 * End-to-end `simtrip train` throughput, as a user runs it: the CLI on a generated data set of
 * `--steps` batches, one epoch, once per `--workers` value (data.workers: augmentation threads, the
 * next batch prepared while the engine computes this one). img/s is read back from metrics.jsonl,
 * over the log windows after the first (which holds the warm-up). Put beside the step-only figure of
 * `npm run bench`, it shows whether augmentation keeps the engine busy.
 *
 *   npm run bench:e2e -- [--engine auto] [--arch resnet18] [--width 64] [--size 32] [--batch 256]
 *                        [--steps 24] [--workers 0,4] [--precision fp32|mixed16]
 *
 * Prints a table, then one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

interface Options {
  engine: string;
  arch: string;
  width: number;
  size: number;
  batch: number;
  steps: number;
  workers: number[];
  precision: string;
}

function parse(argv: string[]): Options {
  const o: Options = { engine: 'auto', arch: 'resnet18', width: 64, size: 32, batch: 256, steps: 24, workers: [0, 4], precision: 'fp32' };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--engine') o.engine = value;
    else if (flag === '--arch') o.arch = value;
    else if (flag === '--precision') o.precision = value;
    else if (flag === '--workers') o.workers = value.split(',').map(Number);
    else if (['--width', '--size', '--batch', '--steps'].includes(flag)) (o as unknown as Record<string, number>)[flag.slice(2)] = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return o;
}

interface WindowLine {
  kind?: string;
  img_per_s?: number;
  step?: number;
}

function runOnce(o: Options, workers: number, cli: string, work: string): { img_per_s: number; windows: number[]; seconds: number } {
  const name = `e2e-w${workers}`;
  const logEvery = Math.max(2, Math.floor(o.steps / 4));
  const config = {
    name,
    data: { kind: 'synthetic', image_size: o.size, workers, synthetic: { train_size: o.batch * o.steps, test_size: o.batch, size: o.size } },
    model: { arch: o.arch, stem: o.size <= 64 && !o.arch.startsWith('bit-') ? 'cifar' : 'imagenet', width: o.width },
    method: { name: 'simsiam', proj_layers: 2, proj_dim: 2048, pred_hidden: 512 },
    train: { epochs: 1, batch_size: o.batch, warmup_epochs: 0, log_every: logEvery, knn_every: 0, checkpoint_every: 1000 },
    engine: { backend: o.engine, precision: o.precision },
  };
  const file = path.join(work, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'train', '--config', file], { cwd: work, stdio: ['ignore', 'ignore', 'inherit'] });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`simtrip train with data.workers ${workers} exited with ${r.status}`);
  const lines = readFileSync(path.join(work, 'runs', name, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as WindowLine)
    .filter((l) => l.kind === 'train' && typeof l.img_per_s === 'number');
  const windows = lines.map((l) => l.img_per_s!);
  const steady = windows.length > 1 ? windows.slice(1) : windows;
  return { img_per_s: steady.reduce((a, b) => a + b, 0) / Math.max(steady.length, 1), windows, seconds };
}

function main(): void {
  const o = parse(process.argv.slice(2));
  const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'simtrip.js');
  const work = mkdtempSync(path.join(os.tmpdir(), 'simtrip-e2e-'));
  const results: Array<{ workers: number; img_per_s: number; windows: number[]; seconds: number }> = [];
  try {
    for (const w of o.workers) {
      process.stderr.write(`[e2e] simtrip train, data.workers ${w}\n`);
      results.push({ workers: w, ...runOnce(o, w, cli, work) });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`model          ${o.arch} width ${o.width}, ${o.size}px, batch ${o.batch}, ${o.steps} steps, engine ${o.engine}, ${o.precision}\n`);
  for (const r of results) process.stdout.write(`data.workers ${String(r.workers).padEnd(3)} ${r.img_per_s.toFixed(1).padStart(10)} img/s end to end (windows ${r.windows.map((v) => v.toFixed(0)).join(', ')}; run ${r.seconds.toFixed(1)} s)\n`);
  process.stdout.write(`${JSON.stringify({ ...o, results })}\n`);
}

main();
