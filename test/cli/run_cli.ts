/** Runs the simtrip CLI in-process and captures what it prints (shared by the CLI tests). */
import { afterEach, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(...args: string[]): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'simtrip', ...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** main() reports through process.exitCode too; reset it so one test's code does not leak into the next. */
export function resetExitCodeAfterEach(): void {
  afterEach(() => {
    process.exitCode = undefined;
  });
}

/** A config that trains in seconds on the cpu backend: 40 synthetic 16 px images, a width-4 ResNet-18, 2 epochs of 4 steps. */
export const TINY_CONFIG = `
name: cli-tiny
seed: 1
engine: { backend: cpu }
data:
  kind: synthetic
  image_size: 16
  synthetic: { train_size: 40, test_size: 20, size: 16 }
model: { arch: resnet18, stem: cifar, width: 4 }
method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 }
train: { epochs: 2, batch_size: 10, checkpoint_every: 1, knn_every: 1, log_every: 2 }
eval:
  batch_size: 20
  knn: { k: 5 }
  linear: { epochs: 5, batch_size: 10 }
`;
