/**
 * The trainer's guarantees on the CUDA engine (its host build): an interrupted run resumes to exactly
 * the weights, momentum and losses of an uninterrupted one; a NaN stop and an out-of-memory stop leave
 * the last good checkpoint untouched, the latter as one line naming the batch size and the memory.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { EngineInfo } from '../../src/engine/engine.js';
import { tf } from '../../src/engine/tf.js';
import { fallbackRuns, resetKernelStats } from '../../src/engine/kernel_stats.js';
import { GpuOutOfMemoryError } from '../../src/engine/out_of_memory.js';
import { DivergedError, train } from '../../src/train/trainer.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from '../engine/cuda/helpers.js';
import { metricsOf, options, runDir, tensorsOf, tinyConfig } from './helpers.js';

const load = await loadCudaHost();
const engine: EngineInfo = { requested: 'cuda', engine: 'cuda', tfBackend: CUDA_HOST, skipped: [], detail: 'host build' };
const cudaOptions = (...args: Parameters<typeof options>) => ({ ...options(...args), engine });

describe.skipIf(!load.ok)('train on the CUDA engine', () => {
  let full: string;

  beforeAll(async () => {
    await tf.setBackend(CUDA_HOST);
    full = await runDir();
    resetKernelStats();
    await train(cudaOptions(tinyConfig(), full));
  });

  it('trains without a host fallback, and logs GPU memory with every window', async () => {
    expect([...fallbackRuns].map(([k, n]) => `${k} x${n}`)).toEqual([]);
    const windows = (await metricsOf(full)).filter((m) => m.kind === 'train');
    expect(windows.length).toBeGreaterThan(0);
    for (const w of windows) {
      expect(w.gpu_peak_mib as number).toBeGreaterThan(0);
      expect(w.gpu_peak_mib as number).toBeGreaterThanOrEqual(w.gpu_mib as number);
    }
  });

  it('resumed after an interruption mid-epoch, ends with exactly the same weights, momentum and losses', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    const first = await train(cudaOptions(tinyConfig(), dir, { signal: controller.signal, onStep: (s) => s === 6 && controller.abort() }));
    expect(first.interrupted).toBe('aborted');
    const resumed = await train(cudaOptions(tinyConfig(), dir, { resume: true }));
    expect(resumed.steps).toBe(16);
    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(join(dir, 'checkpoints', 'last.safetensors'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
    const losses = async (d: string) => (await metricsOf(d)).filter((m) => m.kind === 'train').map((m) => m.loss);
    expect(await losses(dir)).toEqual(await losses(full));
  });

  it('stops on a non-finite loss without touching the last good checkpoint', async () => {
    const dir = await runDir();
    const controller = new AbortController();
    await train(cudaOptions(tinyConfig(), dir, { signal: controller.signal, onStep: (s) => s === 4 && controller.abort() }));
    const before = await readFile(join(dir, 'checkpoints', 'last.safetensors'));
    const err = await train(cudaOptions(tinyConfig({ base_lr: 1e38, warmup_epochs: 0 }), dir, { resume: true })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DivergedError);
    expect(await readFile(join(dir, 'checkpoints', 'last.safetensors'))).toEqual(before);
  });

  it('out of GPU memory mid-run: one line with the batch size and memory, the checkpoint kept, and the run resumes', async () => {
    const dir = await runDir();
    const addon = hostAddon();
    let limited = false;
    // From step 5 (epoch 2; epoch 1's checkpoint is written) the device has almost nothing left.
    const onStep = (s: number) => {
      if (s === 5) {
        addon.init(0, addon.memory().inUse + 4096, '', '');
        limited = true;
      }
    };
    try {
      const err = await train(cudaOptions(tinyConfig(), dir, { onStep })).catch((e: unknown) => e);
      expect(limited).toBe(true);
      expect(err).toBeInstanceOf(GpuOutOfMemoryError);
      expect((err as Error).message).toMatch(/^GPU out of memory at train\.batch_size 8: an allocation of .* found .* free of .*; lower train\.batch_size \(now 8\)\. The last good checkpoint is kept\.$/);
    } finally {
      addon.init(0, 0, '', '');
    }
    const checkpoint = join(dir, 'checkpoints', 'last.safetensors');
    const kept = await tensorsOf(checkpoint);
    expect(kept.size).toBeGreaterThan(0);
    const resumed = await train(cudaOptions(tinyConfig(), dir, { resume: true }));
    expect(resumed.steps).toBe(16);
    const a = await tensorsOf(join(full, 'checkpoints', 'last.safetensors'));
    const b = await tensorsOf(checkpoint);
    for (const [name, values] of a) expect(b.get(name), name).toEqual(values);
  });
});
