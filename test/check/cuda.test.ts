/**
 * check:cuda itself, run on the CUDA engine's host build at small scale: every part (kernels, full
 * steps, golden fixtures) must pass, so the script a GPU machine runs is known to work end to end.
 */
import { describe, expect, it } from 'vitest';
import { formatTable, runCudaCheck } from '../../src/check/cuda.js';
import { loadCudaHost } from '../engine/cuda/helpers.js';
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
  });
});
