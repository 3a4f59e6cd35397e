/**
 * The convolution algorithm choice (native/cuda/conv_algos.h), which the host build runs with an
 * emulated search: a fast algorithm that needs a workspace and a direct one that needs none. A call
 * whose fastest algorithm's workspace cannot be allocated falls back instead of running out of
 * memory; a search is offered at most half of the free memory; a search saved by another process is
 * reused.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConvPlanFile, saveConvPlanFile } from '../../../src/engine/cuda/conv_plan_file.js';
import { tf } from '../../../src/engine/tf.js';
import type { ConvPlanInfo, CudaAddon } from '../../../src/engine/cuda/native.js';
import { relativeError } from '../../helpers.js';
import { CUDA_HOST, hostAddon, loadCudaHost, valuesOn } from './helpers.js';

const load = await loadCudaHost();

afterEach(() => {
  if (load.ok) hostAddon().init(0, 0, '', '');
});

const shape = (p: ConvPlanInfo) => p.key.split(' ').slice(3).map(Number);
/** The forward plan of the convolution with input [n, h, w, c] and k output channels. */
const forwardPlan = (n: number, h: number, w: number, c: number, k: number): ConvPlanInfo | undefined =>
  hostAddon()
    .convPlans()
    .find((p) => p.key.startsWith('0 float') && shape(p).slice(0, 5).join() === [n, h, w, c, k].join());

const fill = (shape: number[], scale: number) => tf.tensor(Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.cos(i * scale)), shape);

describe.skipIf(!load.ok)('convolution algorithms on the CUDA host build', () => {
  it('runs the next algorithm when the fastest one\'s workspace does not fit any more', async () => {
    const conv = () => tf.conv2d(fill([2, 8, 8, 4], 0.3) as tf.Tensor4D, fill([3, 3, 4, 8], 0.7) as tf.Tensor4D, 1, 'same');
    const [want] = await valuesOn('cpu', conv);
    await tf.setBackend(CUDA_HOST);
    const addon: CudaAddon = hostAddon();
    const x = fill([2, 8, 8, 4], 0.3) as tf.Tensor4D;
    const w = fill([3, 3, 4, 8], 0.7) as tf.Tensor4D;
    tf.conv2d(x, w, 1, 'same').dispose(); // searches while memory is free
    const plan = forwardPlan(2, 8, 8, 4, 8)!;
    expect(plan.algorithms.map((a) => [a.algo, a.workspace])).toEqual([
      [1, 2 * 8 * 8 * 8 * 4],
      [0, 0],
    ]);
    expect(plan.used).toBe(0);
    // Room for the output, not for the transform's workspace as well.
    addon.init(0, addon.memory().inUse + 2 * 8 * 8 * 8 * 4 + 1024, '', '');
    const y = tf.conv2d(x, w, 1, 'same');
    expect(relativeError(Array.from(y.dataSync()), Array.from(want!))).toBeLessThan(1e-6);
    expect(forwardPlan(2, 8, 8, 4, 8)!.used).toBe(1);
    tf.dispose([x, w, y]);
  });

  it('offers a search at most half of the free memory, and keeps only the algorithms that fit it', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon: CudaAddon = hostAddon();
    const x = fill([2, 32, 32, 4], 0.1) as tf.Tensor4D;
    const w = fill([1, 1, 4, 256], 0.2) as tf.Tensor4D;
    const out = 2 * 32 * 32 * 256 * 4; // 2 MiB, and the transform's workspace as much
    // 3 MiB free once the output and the filter's KRSC copy are allocated.
    addon.init(0, addon.memory().inUse + 1024 * 4 + out + 3 * 2 ** 20, '', '');
    const y = tf.conv2d(x, w, 1, 'valid');
    const plan = forwardPlan(2, 32, 32, 4, 256)!;
    expect(plan.searchWorkspace).toBeLessThanOrEqual(1.5 * 2 ** 20);
    expect(plan.searchWorkspace).toBeGreaterThan(0);
    expect(plan.algorithms.map((a) => a.algo)).toEqual([0]);
    tf.dispose([x, w, y]);
  });

  it('reuses a search saved by another process, and saves its own', async () => {
    await tf.setBackend(CUDA_HOST);
    const addon: CudaAddon = hostAddon();
    // A [1, 5, 5, 2] input, 3 filters of 1x1, valid: one algorithm, the direct one, as a device found it.
    const key = '0 float exact 1 5 5 2 3 1 1 0 0 1 1 1 1 5 5';
    expect(addon.loadConvPlans(`${key}|1048576|0 1 0 0.25;\nnot a plan\n`)).toBe(1);
    expect(addon.loadConvPlans(`${key}|1048576|0 1 0 0.25;\n`)).toBe(0);
    const y = tf.conv2d(fill([1, 5, 5, 2], 0.4) as tf.Tensor4D, fill([1, 1, 2, 3], 0.9) as tf.Tensor4D, 1, 'valid');
    y.dispose();
    const plan = addon.convPlans().find((p) => p.key === key)!;
    expect(plan).toMatchObject({ loaded: true, used: 0, algorithms: [{ algo: 0, mathType: 1, workspace: 0, ms: 0.25 }] });
    expect(addon.saveConvPlans().split('\n')).toContain(`${key}|1048576|0 1 0 0.25;`);
  });

  it('keeps searches in a file across processes, for the same device, libraries and build only', () => {
    const addon: CudaAddon = hostAddon();
    const file = join(mkdtempSync(join(tmpdir(), 'simtrip-plans-')), 'plans.txt');
    saveConvPlanFile(addon, 'device A', file);
    const saved = readFileSync(file, 'utf8').split('\n');
    expect(saved[0]).toBe('# device A');
    expect(saved.length).toBeGreaterThan(2);
    const key = '1 float exact 1 7 7 2 3 1 1 0 0 1 1 1 1 7 7';
    writeFileSync(file, `# device A\n${key}|0|0 0 0 1;\n`);
    expect(loadConvPlanFile(addon, 'device B', file)).toBe(0);
    expect(loadConvPlanFile(addon, 'device A', file)).toBe(1);
    expect(addon.convPlans().find((p) => p.key === key)?.loaded).toBe(true);
  });
});
