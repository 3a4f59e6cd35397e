/**
 * check:cuda itself, run on the CUDA engine's host build at small scale: every part (kernels, full
 * steps, golden fixtures) must pass, so the script a GPU machine runs is known to work end to end. And
 * with faults injected: every failure is reported, never only the first, with what a fix needs (the
 * kernel, shapes, dtypes, errors, the convolutions and their algorithms), parts past the time budget are
 * skipped and say so, and the JSON is saved after every part.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { describeConvPlan, cudnnStatusOf, type CheckRow, type ConvUse } from '../../src/check/check_run.js';
import { formatTable, runCudaCheck } from '../../src/check/cuda.js';
import type { CudaAddon, HostEmulation } from '../../src/engine/cuda/native.js';
import { hostAddon, loadCudaHost } from '../engine/cuda/helpers.js';
import { fixture } from '../io/tmp.js';

const load = await loadCudaHost();

describe.skipIf(!load.ok)('check:cuda on the host build', () => {
  it('passes every check: kernels, every preset\'s step with no fallback, mixed16 against the emulation, the linear probe, golden fixtures and their gradients', async () => {
    const rows = await runCudaCheck({ engine: 'host', reference: 'onednn', scale: 'small', only: ['kernels', 'steps', 'mixed16', 'probe', 'golden'], fixtures: fixture() });
    const failed = rows.filter((r) => r.ok === false);
    expect(failed.map((r) => `${r.name}: ${r.value}`)).toEqual([]);
    expect(rows.filter((r) => r.part === 'kernels').length).toBeGreaterThan(50);
    // SimSiam on ResNet-18 and ResNet-50, BiT GroupNorm and BatchNorm, SimTriplet, supervised: 5 rows each.
    expect(rows.filter((r) => r.part === 'steps').length).toBe(30);
    expect(rows.filter((r) => r.part === 'probe').length).toBe(1);
    expect(rows.filter((r) => r.part === 'mixed16').length).toBe(6);
    expect(rows.filter((r) => r.part === 'golden').length).toBe(4);
    const table = formatTable(rows);
    expect(table.split('\n').at(-1)).toMatch(/0 failed$/);
    // Every preset's step and the golden fixtures on the host emulation: about a minute alone, more on a
    // loaded two-core machine.
  }, 300_000);
});

describe.skipIf(!load.ok)('check:cuda when kernels fail', () => {
  const addon = () => hostAddon() as CudaAddon & HostEmulation;
  afterEach(() => addon().emulate('clear'));

  it('reports every failure with its kernel, shapes, dtypes, error and convolutions, and goes on', async () => {
    addon().emulate('failKernel', 'convBackwardFilter');
    const saves: Array<{ rows: number; convolutions: ConvUse[] }> = [];
    const lines: string[] = [];
    const rows = await runCudaCheck(
      { engine: 'host', reference: 'onednn', scale: 'small', only: ['kernels', 'golden'], fixtures: fixture(), budget: 0.001 },
      (l) => lines.push(l),
      (r, convolutions) => saves.push({ rows: r.length, convolutions }),
    );
    const kernels = rows.filter((r) => r.part === 'kernels');
    const failed = kernels.filter((r) => r.ok === false);
    // Every convolution case with a gradient fails; every other case still runs and passes.
    expect(failed.length).toBeGreaterThan(3);
    expect(kernels.filter((r) => r.ok).length).toBeGreaterThan(40);
    const conv = failed.find((r) => r.name.startsWith('conv 3x3'))! as Required<CheckRow>;
    expect(conv.detail).toMatchObject({ kernel: conv.name, dtypes: ['float32', 'float32'] });
    expect(conv.detail.shapes).toHaveLength(2);
    expect(conv.detail.error).toMatch(/convBackwardFilter.*too many resources requested for launch \(injected\)/);
    expect(conv.detail.convolutions!.some((c) => c.direction === 'forward' && c.algorithm >= 0 && c.mathType >= 0 && /^n=\d+ \d+x\d+x\d+ -> /.test(c.shape))).toBe(true);
    const passed = kernels.find((r) => r.ok && r.name.startsWith('add'))!;
    expect(passed.detail).toMatchObject({ relativeError: expect.any(Number), maxError: expect.any(Number), tolerance: 1e-5 });
    // The budget was spent by the first part: the second says so instead of running.
    expect(rows.filter((r) => r.part === 'golden')).toEqual([expect.objectContaining({ name: 'not run', ok: null })]);
    expect(lines[0]).toMatch(/^info target cuda-host/);
    expect(lines).toContain('== part 1/2: kernels (at 0 s)');
    expect(saves.length).toBeGreaterThanOrEqual(2);
    expect(saves.at(-1)!.convolutions.length).toBeGreaterThan(0);
  });

  it('after a fault that leaves the GPU unusable, every later check fails with it and the table still comes', async () => {
    addon().emulate('faultLaunch', 0);
    const rows = await runCudaCheck({ engine: 'host', reference: 'onednn', scale: 'small', only: ['kernels'], fixtures: fixture() });
    const failed = rows.filter((r) => r.ok === false);
    expect(failed.length).toBeGreaterThan(50);
    const odd = failed.filter((r) => !/the GPU failed: kernel \w+: an illegal memory access/.test(r.value) && r.name !== 'native kernels no case reached');
    expect(odd.map((r) => `${r.name}: ${r.value}`)).toEqual([]);
    expect(formatTable(rows).split('\n').at(-1)).toMatch(/\d+ failed$/);
  });

  it('reads the cuDNN status and the plans\' keys', () => {
    expect(cudnnStatusOf('cudnnConvolutionForward (n=2 ..., algo 1, math type 2, workspace 0 bytes): CUDNN_STATUS_EXECUTION_FAILED (cudnnStatus_t 5000)')).toBe(5000);
    expect(cudnnStatusOf('other')).toBeUndefined();
    const plan = { key: '2 half exact 8 16 16 64 128 3 3 1 1 2 2 1 1 8 8', algorithms: [{ algo: 1, mathType: 1, workspace: 4096, ms: 0.5 }, { algo: 0, mathType: 1, workspace: 0, ms: 0.9 }], used: 1, calls: 3, searchWorkspace: 2 ** 20, loaded: false };
    expect(describeConvPlan(plan)).toEqual({
      direction: 'backward filter',
      storage: 'half',
      math: 'exact',
      shape: 'n=8 16x16x64 -> 8x8x128, 3x3 stride 2,2 pad 1,1 dilation 1,1',
      algorithm: 0,
      mathType: 1,
      workspace: 0,
      candidates: 2,
    });
  });
});
