/**
 * Native checks compiled with g++ and run: the CUDA emulator that runs every kernel in CI
 * (test/native/cuda_emu_checks.cc against native/cuda/host/emu.cc) and the half storage conversions
 * (test/native/half_bits_checks.cc).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const hasGxx = spawnSync('g++', ['--version']).status === 0;

/** Compiles one checks file (with native/ on the include path, plus `extra` sources) and runs it. */
function buildAndRun(source: string, extra: string[] = []): { status: number | null; stdout: string; stderr: string } {
  const exe = path.join(mkdtempSync(path.join(tmpdir(), 'simtrip-native-')), 'checks');
  const build = spawnSync('g++', ['-std=c++17', '-O2', '-DSIMTRIP_HOST_EMU', `-I${path.join(root, 'native')}`, path.join(root, source), ...extra.map((f) => path.join(root, f)), '-o', exe], {
    encoding: 'utf8',
  });
  if (build.status !== 0) return { status: build.status, stdout: '', stderr: build.stderr };
  return spawnSync(exe, { encoding: 'utf8' });
}

describe.skipIf(!hasGxx)('half storage conversions (native/shared/half_bits.h)', () => {
  it('match IEEE float16 on every half and on 20 million float32 patterns', () => {
    const run = buildAndRun('test/native/half_bits_checks.cc');
    expect(run.stdout + run.stderr).toContain('mismatches 0');
    expect(run.status).toBe(0);
  });
});

describe.skipIf(!hasGxx)('the CUDA emulator', () => {
  it('gives barriers, shuffles and block reductions their CUDA semantics and reports misuse', () => {
    // launch.h checks limits, counts and raises faults through the host runtime.
    const run = buildAndRun('test/native/cuda_emu_checks.cc', ['native/cuda/host/emu.cc', 'native/cuda/host/runtime.cc', 'native/cuda/faults.cc']);
    expect(run.stderr).toBe('');
    expect(run.stdout).not.toContain('FAIL');
    expect(run.stdout.split('\n').filter((l) => l.startsWith('ok')).length).toBe(7);
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});
