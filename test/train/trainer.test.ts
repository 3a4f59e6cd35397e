import { existsSync } from 'node:fs';
import { appendFile, readFile, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tf } from '../../src/engine/tf.js';
import { readCheckpoint } from '../../src/train/checkpoint.js';
import type { MetricsRecord, TrainingLog } from '../../src/train/metrics_log.js';
import { DivergedError, resumedAt, train } from '../../src/train/trainer.js';
import { UserError } from '../../src/util/errors.js';
import { useCpuBackend } from '../helpers.js';
import { metricsOf, options, runDir, tensorsOf, timingless, tinyConfig } from './helpers.js';

beforeAll(useCpuBackend);

/** Every file under `dir` with its bytes and modification time. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of await readdir(dir, { recursive: true })) {
    const path = join(dir, name);
    const info = await stat(path);
    if (info.isFile()) out[name] = `${info.mtimeMs} ${(await readFile(path)).toString('base64')}`;
  }
  return out;
}

describe('train', () => {
  let full: string;
  let fullSteps: number[];

  beforeAll(async () => {
    full = await runDir();
    const counts: number[] = [];
    await train(options(tinyConfig(), full, { onStep: () => counts.push(tf.memory().numTensors) }));
    fullSteps = counts;
  });

  it('writes the run directory: config, metrics, checkpoints pruned to keep_last, report', async () => {
    const files = await readdir(full);
    expect(files).toEqual(expect.arrayContaining(['config.yaml', 'run.json', 'metrics.jsonl', 'checkpoints', 'report']));
    const ckpts = (await readdir(join(full, 'checkpoints'))).filter((f) => !f.startsWith('.')).sort();
    expect(ckpts).toEqual(['epoch-0003.safetensors', 'epoch-0004.safetensors', 'last.safetensors']);
    const metrics = await metricsOf(full);
    const trainLines = metrics.filter((m) => m.kind === 'train');
    expect(trainLines.map((m) => m.step)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    for (const m of trainLines) {
      expect(m.loss).toBeGreaterThanOrEqual(-1);
      expect(m.loss).toBeLessThanOrEqual(1);
      expect(m.collapse_std).toBeGreaterThan(0);
      expect(m.img_per_s).toBeGreaterThan(0);
    }
    const knn = metrics.filter((m) => m.kind === 'knn');
    expect(knn.map((m) => m.epoch)).toEqual([2, 4]);
    expect(await readFile(join(full, 'config.yaml'), 'utf8')).toContain('batch_size: 8');
  });

  it('keeps the number of live tensors flat from step to step', () => {
    // The first step creates the momentum buffers; from then on nothing may accumulate.
    const after = fullSteps.slice(1);
    expect(new Set(after).size).toBe(1);
  });

  it('resumed after an interruption mid-epoch, ends with exactly the same weights, momentum and losses', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    const first = await train(options(tinyConfig(), dir, { signal: controller.signal, onStep: (s) => s === 6 && controller.abort() }));
    expect(first.interrupted).toBe('aborted');
    expect(first.steps).toBe(6);
    const resumed = await train(options(tinyConfig(), dir, { resume: true }));
    expect(resumed.interrupted).toBeUndefined();
    expect(resumed.steps).toBe(16);

    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(join(dir, 'checkpoints', 'last.safetensors'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    expect([...a.keys()].some((k) => k.startsWith('optimizer.momentum.'))).toBe(true);
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);

    const lossesA = (await metricsOf(full)).filter((m) => m.kind === 'train').map((m) => m.loss);
    const lossesB = (await metricsOf(dir)).filter((m) => m.kind === 'train').map((m) => m.loss);
    expect(lossesB).toEqual(lossesA);
  });

  it('a damaged last: resumes from the newest intact epoch checkpoint, says so in one line, and still ends exactly as the full run', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    await train(options(tinyConfig(), dir, { signal: controller.signal, onStep: (s) => s === 10 && controller.abort() }));
    const last = join(dir, 'checkpoints', 'last.safetensors');
    await truncate(last, 64);
    const lines: string[] = [];
    const resumed = await train(options(tinyConfig(), dir, { resume: true, log: (l) => lines.push(l) }));
    expect(resumed.steps).toBe(16);
    const note = lines.filter((l) => l.startsWith('--resume:'));
    expect(note).toHaveLength(1);
    expect(note[0]).toMatch(/^--resume: .*last\.safetensors is damaged \(header length \d+ exceeds the 56 bytes after the length field\); resuming from .*epoch-0002\.safetensors \(epoch 2, step 8\); the run goes back 2 steps, from step 10/);
    expect(lines).toContain(`run      ${dir} (resumed at the start of epoch 3/4, step 8)`);

    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(last);
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
    const lossesA = (await metricsOf(full)).filter((m) => m.kind === 'train').map((m) => m.loss);
    expect((await metricsOf(dir)).filter((m) => m.kind === 'train').map((m) => m.loss)).toEqual(lossesA);
  });

  it('a real SIGINT stops the run at the next step, not at the end of the epoch', async () => {
    const dir = await runDir();
    // proper-lockfile's exit hooks (signal-exit) listen too; the trainer must leave only its own removed.
    const listeners = process.listenerCount('SIGINT');
    // The signal is delivered through the event loop, as a Ctrl-C would be.
    const result = await train(
      options(tinyConfig(), dir, { handleSignals: true, onStep: (s) => s === 1 && process.kill(process.pid, 'SIGINT') }),
    );
    expect(result.interrupted).toBe('SIGINT');
    expect(result.steps).toBeLessThan(4);
    expect(process.listenerCount('SIGINT')).toBe(listeners);
  });

  it('refuses to overwrite a finished run, and to resume a run that has no checkpoint', async () => {
    await expect(train(options(tinyConfig(), full))).rejects.toThrow(UserError);
    await expect(train(options(tinyConfig(), await runDir(), { resume: true }))).rejects.toThrow(/no checkpoint/);
  });

  it('--resume on a finished run says it is complete, names --set train.epochs=N, and touches nothing', async () => {
    const before = await snapshot(full);
    const result = await train(options(tinyConfig(), full, { resume: true }));
    expect(result.complete).toMatch(
      /is complete: it has trained all 4 epochs of train\.epochs \(16 steps\); nothing was resumed or changed\. To train it longer, resume with --set train\.epochs=N for an N above 4 /,
    );
    expect(result.steps).toBe(16);
    expect(Number.isFinite(result.epochLoss!)).toBe(true);
    expect(Number.isFinite(result.lastLoss)).toBe(true);
    expect(await snapshot(full)).toEqual(before);
  });

  it('refuses to resume with a different model', async () => {
    const cfg = tinyConfig();
    const changed = { ...cfg, model: { ...cfg.model, width: 8 } };
    await expect(train(options(changed, full, { resume: true }))).rejects.toThrow(/--resume: model differs from the checkpoint's config/);
  });

  it('stops on a non-finite loss without touching the last good checkpoint', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    await train(options(tinyConfig(), dir, { signal: controller.signal, onStep: (s) => s === 4 && controller.abort() }));
    const before = await readFile(join(dir, 'checkpoints', 'last.safetensors'));
    // An absurd lr overflows the weights to Inf within a few steps, and the loss becomes NaN.
    const exploding = tinyConfig({ base_lr: 1e38, warmup_epochs: 0 });
    const err = await train(options(exploding, dir, { resume: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergedError);
    expect((err as Error).message).toMatch(/loss is NaN at epoch \d+, step \d+.*last good checkpoint .*last\.safetensors is kept/);
    expect(await readFile(join(dir, 'checkpoints', 'last.safetensors'))).toEqual(before);
  });

  it('a non-finite loss before any checkpoint says to change the config and start again, not to resume', async () => {
    const dir = await runDir();
    const exploding = tinyConfig({ base_lr: 1e38, warmup_epochs: 0 });
    const err = await train(options(exploding, dir)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergedError);
    const message = (err as Error).message;
    expect(message).toMatch(/^loss is NaN at epoch 1, step \d+ .*no checkpoint had been written yet\. Lower train\.base_lr or raise train\.warmup_epochs, then start the run again \(without --resume: there is no checkpoint to continue from\)\.$/);
    expect(message).not.toMatch(/resume with --resume/);
    // Starting again in the same run directory, as the message says, is accepted.
    const controller = new AbortController();
    const again = await train(options(tinyConfig(), dir, { signal: controller.signal, onStep: () => controller.abort() }));
    expect(again.interrupted).toBe('aborted');
  });
});

describe('metrics.jsonl across a stop and --resume', () => {
  // log_every 3 over 4-step epochs: a stop at step 6 falls inside a metrics window (steps 5-7) and
  // inside epoch 2, whose mean the epoch line reports.
  const cfg = () => tinyConfig({ epochs: 2, log_every: 3 });
  const epochLines = (lines: string[]) => lines.filter((l) => l.startsWith('epoch ')).map((l) => l.replace(/ {2}tensors.*/, ''));
  let full: string;
  let fullLog: string[];
  let fullResult: Awaited<ReturnType<typeof train>>;

  beforeAll(async () => {
    full = await runDir();
    fullLog = [];
    fullResult = await train(options(cfg(), full, { log: (l) => fullLog.push(l) }));
  });

  it('one loss is "the loss": the epoch mean, in the epoch line, the epoch record, the result and the report alike', async () => {
    const epochs = (await metricsOf(full)).filter((m) => m.kind === 'epoch');
    expect(epochs.map((m) => [m.step, m.epoch])).toEqual([[4, 1], [8, 2]]);
    const windows = (await metricsOf(full)).filter((m) => m.kind === 'train' && m.epoch === 2);
    // Windows of 3 and 1 steps (steps 5-7, 8): the epoch mean weighs every step once.
    const mean = ((windows[0]!.loss as number) * 3 + (windows[1]!.loss as number)) / 4;
    expect(epochs[1]!.loss as number).toBeCloseTo(mean, 12);
    const shown = (epochs[1]!.loss as number).toFixed(4);
    expect(fullLog).toContainEqual(expect.stringMatching(new RegExp(`^epoch 2/2  mean loss ${shown}  `)));
    expect(fullResult.epochLoss).toBe(epochs[1]!.loss);
    expect(await readFile(join(full, 'report', 'summary.md'), 'utf8')).toContain(`| final loss (mean over epoch 2) | ${shown} |`);
  });

  it('a stop inside a window and an epoch, then --resume: every line equals the uninterrupted run\'s, timings aside, and so do the epoch means; a caller\'s log follows the same rule, flushed before each checkpoint', async () => {
    const dir = await runDir();
    const last = join(dir, 'checkpoints', 'last.safetensors');
    // A log of the caller's (TrainOptions.logs), as a TensorBoard writer would be.
    const seen: { resumeAt: number[]; records: MetricsRecord[]; violations: string[]; closed: number } = { resumeAt: [], records: [], violations: [], closed: 0 };
    let flushedUpTo = 0;
    const spy: TrainingLog = {
      resumeAt: async (step) => {
        seen.resumeAt.push(step);
        seen.records = seen.records.filter((r) => r.step <= step);
        flushedUpTo = step;
      },
      append: (r) => seen.records.push(r),
      flush: async () => {
        // The checkpoint on disk may not be ahead of what this log had flushed before this call.
        const onDisk = existsSync(last) ? (await readCheckpoint(last)).state.step : 0;
        if (onDisk > flushedUpTo) seen.violations.push(`checkpoint at step ${onDisk} before the log reached it (${flushedUpTo})`);
        flushedUpTo = Math.max(flushedUpTo, ...seen.records.map((r) => r.step));
      },
      close: async () => void seen.closed++,
    };
    const controller = new AbortController();
    const log: string[] = [];
    await train(options(cfg(), dir, { logs: [spy], log: (l) => log.push(l), signal: controller.signal, onStep: (s) => s === 6 && controller.abort() }));
    expect((await readCheckpoint(last)).state.running?.window.steps).toBe(2);
    const started = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8')).started;
    await train(options(cfg(), dir, { logs: [spy], resume: true, log: (l) => log.push(l) }));
    // run.json keeps when the run started and records the resumption.
    const info = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8'));
    expect(info.started).toBe(started);
    expect(info.resumes).toEqual([{ step: 6, time: expect.any(String), engine: 'cpu' }]);
    expect((await metricsOf(dir)).map(timingless)).toEqual((await metricsOf(full)).map(timingless));
    expect(epochLines(log)).toEqual(epochLines(fullLog));
    expect(log).toContain(`run      ${dir} (resumed in epoch 2/2 after its step 2 of 4, step 6 overall)`);
    expect(seen.resumeAt).toEqual([0, 6]);
    expect(seen.closed).toBe(2);
    expect(seen.violations).toEqual([]);
    expect(seen.records.map(timingless)).toEqual((await metricsOf(full)).map(timingless));
  });

  it('lines a killed run wrote after its last checkpoint (and a line torn mid-write) are dropped on resume: no step is logged twice', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    await train(options(cfg(), dir, { signal: controller.signal, onStep: (s) => s === 6 && controller.abort() }));
    // What a process killed after step 6 may have left: later lines, the last one cut short.
    const later = (await readFile(join(full, 'metrics.jsonl'), 'utf8')).split('\n').filter((l) => l && JSON.parse(l).step > 6);
    await appendFile(join(dir, 'metrics.jsonl'), `${later.join('\n')}\n${later[0]!.slice(0, 30)}`);
    await train(options(cfg(), dir, { resume: true }));
    const steps = (await metricsOf(dir)).map((m) => `${m.kind}@${m.step}`);
    expect(new Set(steps).size).toBe(steps.length);
    expect((await metricsOf(dir)).map(timingless)).toEqual((await metricsOf(full)).map(timingless));
  });
});

describe('one writer per run directory', () => {
  it('a second train --resume while the first runs is refused (UserError: exit 2), naming the holder; the first is undisturbed', async () => {
    const dir = await runDir();
    let second: Promise<unknown> | undefined;
    const cfg = tinyConfig({ epochs: 1 });
    await train(options(cfg, dir, { onStep: (s) => void (s === 2 && (second = train(options(cfg, dir, { resume: true })).catch((e: unknown) => e))) }));
    const err = await second;
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(new RegExp(`^${dir} is being trained by another process \\(PID ${process.pid} on host .+, started \\d{4}-.*\\)`));
    const steps = (await metricsOf(dir)).filter((m) => m.kind === 'train').map((m) => m.step);
    expect(steps).toEqual([1, 2, 3, 4]);
    expect((await readdir(dir)).filter((f) => f.startsWith('train.lock'))).toEqual([]);
  });
});

describe('resumedAt', () => {
  it('names the 1-based epoch and the step within it', () => {
    expect(resumedAt(15, 6, 3)).toBe('resumed in epoch 3/3 after its step 3 of 6, step 15 overall');
    expect(resumedAt(12, 6, 3)).toBe('resumed at the start of epoch 3/3, step 12');
  });
});

describe('the kNN monitor', () => {
  /** The epoch-2 kNN accuracy of a 2-epoch run, and the monitor's lines. */
  async function monitored(engine: Record<string, unknown>): Promise<{ accuracy: number; lines: string[] }> {
    const base = tinyConfig({ epochs: 2 });
    const dir = await runDir();
    const lines: string[] = [];
    await train(options({ ...base, engine: { ...base.engine, ...engine } } as typeof base, dir, { log: (l) => lines.push(l) }));
    const knn = (await metricsOf(dir)).filter((m) => m.kind === 'knn');
    expect(knn).toHaveLength(1);
    return { accuracy: knn[0]!.accuracy as number, lines: lines.filter((l) => l.startsWith('kNN monitor')) };
  }

  it('scores the same through ONNX Runtime as through the training graph, with no fallback; mixed16 stays on the training graph', async () => {
    const graph = await monitored({ inference: 'tfjs' });
    const ort = await monitored({ inference: 'onnxruntime' });
    expect(ort.accuracy).toBe(graph.accuracy);
    expect([graph.lines, ort.lines]).toEqual([[], []]);
    // A float32 runtime would disagree with the float16-rounding encoder on every epoch's first batch.
    expect((await monitored({ inference: 'onnxruntime', precision: 'mixed16' })).lines).toEqual([]);
  });
});
