/** A tiny training run and its read-back helpers, for the trainer tests on every engine. */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import type { EngineInfo } from '../../src/engine/engine.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import type { TrainOptions } from '../../src/train/trainer.js';

export const engine: EngineInfo = { requested: 'cpu', engine: 'cpu', tfBackend: 'cpu', skipped: [], detail: 'test' };

/** 32 synthetic 16 px images, batch 8: 4 steps per epoch on a width-4 ResNet-18. */
export function tinyConfig(overrides: Record<string, unknown> = {}): Config {
  return ConfigSchema.parse({
    name: 'tiny',
    seed: 3,
    engine: { backend: 'cpu' },
    data: { kind: 'synthetic', image_size: 16, synthetic: { train_size: 32, test_size: 16, size: 16 } },
    model: { arch: 'resnet18', stem: 'cifar', width: 4 },
    method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 },
    train: { epochs: 4, batch_size: 8, base_lr: 0.05, warmup_epochs: 1, checkpoint_every: 1, keep_last: 2, knn_every: 2, log_every: 1, ...overrides },
    eval: { batch_size: 16, knn: { k: 5 } },
  });
}

export async function runDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'simtrip-train-'));
}

export function options(config: Config, dir: string, extra: Partial<TrainOptions> = {}): TrainOptions {
  return { config, runDir: dir, resume: false, engine, log: () => undefined, progressStream: devNull(), ...extra };
}

/** A stream that swallows progress output. */
export function devNull(): NodeJS.WriteStream {
  return { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
}

export async function tensorsOf(path: string): Promise<Map<string, Float32Array>> {
  const file = await readSafetensors(path);
  return new Map(file.names().map((n) => [n, file.getFloat32(n)]));
}

/**
 * A metrics line without what this process measured (wall time, img/s, data wait, process and device
 * memory): what a resumed run must log exactly as an uninterrupted one.
 */
export function timingless(m: Record<string, unknown>): Record<string, unknown> {
  return { ...m, time: 0, img_per_s: 0, data_wait_ms: 0, rss_mib: 0, gpu_mib: 0, gpu_peak_mib: 0 };
}

export async function metricsOf(dir: string): Promise<Array<Record<string, number | string>>> {
  const text = await readFile(join(dir, 'metrics.jsonl'), 'utf8');
  return text.trim().split('\n').map((l) => JSON.parse(l));
}

