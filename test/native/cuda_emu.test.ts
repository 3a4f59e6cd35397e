/**
 * The CUDA emulator that runs every kernel in CI: compiles test/native/cuda_emu_checks.cc against
 * native/cuda/host/emu.cc with g++ and runs it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..', '..');
const hasGxx = spawnSync('g++', ['--version']).status === 0;

describe.skipIf(!hasGxx)('the CUDA emulator', () => {
  it('gives barriers, shuffles and block reductions their CUDA semantics and reports misuse', () => {
    const exe = path.join(mkdtempSync(path.join(tmpdir(), 'simtrip-emu-')), 'checks');
    const build = spawnSync(
      'g++',
      ['-std=c++17', '-O1', '-DSIMTRIP_HOST_EMU', `-I${path.join(root, 'native')}`, path.join(root, 'test/native/cuda_emu_checks.cc'), path.join(root, 'native/cuda/host/emu.cc'), '-o', exe],
      { encoding: 'utf8' },
    );
    expect(build.status, build.stderr).toBe(0);
    const run = spawnSync(exe, { encoding: 'utf8' });
    expect(run.stdout).not.toContain('FAIL');
    expect(run.stdout.split('\n').filter((l) => l.startsWith('ok')).length).toBe(7);
    expect(run.status, run.stdout + run.stderr).toBe(0);
  });
});
