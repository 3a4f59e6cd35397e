/**
 * The device script (scripts/device/cuda-run.sh) without a GPU: its syntax, the order of its parts
 * (correctness first, then the fp32 benchmark, then AMP, then the rest), that a failing part does not
 * stop the run, that parts which no longer fit the time budget are skipped and say so, and that at
 * most the 8 files a device run brings back are left in $OUT. Node, nvidia-smi and compute-sanitizer
 * are stubs on PATH; the script itself runs as on the GPU machine, from a copy in .gpu/.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/engine/package_root.js';

const SCRIPT = path.join(packageRoot(), 'scripts', 'device', 'cuda-run.sh');

/** A device checkout: .gpu/ with the script, empty archives, an on-device.sh and stub commands. */
function checkout(): { root: string; out: string; work: string; env: NodeJS.ProcessEnv } {
  const root = mkdtempSync(path.join(tmpdir(), 'simtrip-device-'));
  const gpu = path.join(root, '.gpu');
  const bin = path.join(root, 'bin');
  mkdirSync(path.join(gpu, 'empty'), { recursive: true });
  mkdirSync(bin);
  copyFileSync(SCRIPT, path.join(gpu, 'cuda-run.sh'));
  writeFileSync(path.join(gpu, 'on-device.sh'), 'echo on-device\n');
  for (const archive of ['addons.tar.xz', 'libs.tar.xz']) spawnSync('tar', ['-cJf', path.join(gpu, archive), '-C', path.join(gpu, 'empty'), '.']);
  const stub = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  // check:cuda fails (as a real failure would); the benchmarks print their numbers.
  stub(
    'node',
    `echo "node $*" >> "$CUDA_RUN_WORK/calls.txt"
case "$*" in
  *check/cuda.js*) echo "FAIL kernels conv 3x3/1: error: cudnnConvolutionForward (...): CUDNN_STATUS_EXECUTION_FAILED"; echo "1 of 2 checks passed or informational, 1 failed"; exit 1 ;;
  *compare.js*) echo "ours: cuda (stub), step only  1000.00  12.3  512 MiB"; echo "pytorch 2.11 (cuda, random inputs)  1100.00  11.6  498 MiB"; echo "ratio ours/pytorch, training step: 0.91" ;;
  *doctor*) echo "  ok    cuda            stub; self-check passed (1 ms)" ;;
esac`,
  );
  stub('nvidia-smi', 'echo "NVIDIA H100 80GB HBM3, 580.95.05, 81559 MiB"');
  stub('compute-sanitizer', 'echo "compute-sanitizer $*" >> "$CUDA_RUN_WORK/calls.txt"; echo "========= ERROR SUMMARY: 0 errors"');
  const out = path.join(root, 'out');
  const work = path.join(root, 'work');
  return { root, out, work, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, OUT: out, CUDA_RUN_WORK: work } };
}

function runScript(c: ReturnType<typeof checkout>, env: Record<string, string> = {}) {
  const r = spawnSync('bash', [path.join(c.root, '.gpu', 'cuda-run.sh')], { env: { ...c.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { ...r, calls: () => readFileSync(path.join(c.work, 'calls.txt'), 'utf8').trim().split('\n') };
}

describe('the device script', () => {
  it('parses', () => {
    expect(spawnSync('bash', ['-n', SCRIPT], { encoding: 'utf8' }).stderr).toBe('');
  });

  it('runs correctness first, then the fp32 benchmark, then AMP, then the sanitizer and the rest (dry run)', () => {
    const c = checkout();
    const r = runScript(c, { CUDA_RUN_DRY: '1' });
    expect(r.status).toBe(0);
    const order = [...r.stdout.matchAll(/^dry-run (\S+) \(timeout (\d+) s\)/gm)].map((m) => m[1]);
    expect(order).toEqual([
      'doctor',
      'check',
      'r18-b512-fp32',
      'r50-224-b64-fp32',
      'r18-b512-amp',
      'r50-224-b64-amp',
      'sanitizer-memcheck',
      'sanitizer-racecheck',
      'sanitizer-synccheck',
      'sanitizer-initcheck',
      'profile',
      'e2e',
    ]);
    expect(r.stdout).toMatch(/dry-run check \(timeout \d+ s\): node \.gpu\/dist\/check\/cuda\.js --budget \d+ --out /);
    expect(r.stdout).toMatch(/dry-run sanitizer-memcheck .*--tool memcheck --print-limit 20 --error-exitcode 99 node \.gpu\/dist\/check\/cuda\.js --only kernels --scale small/);
    expect(r.stdout).toMatch(/dry-run sanitizer-racecheck .*--tool racecheck --kernel-name kns=simtrip /);
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^== |^e2e /);
  });

  it('goes on after a failing part, and brings back at most 8 files', () => {
    const c = checkout();
    const r = runScript(c, { CUDA_RUN_PARTS: 'doctor check bench sanitizer' });
    expect(r.status).toBe(0);
    const calls = r.calls();
    expect(calls.findIndex((l) => l.includes('check/cuda.js'))).toBeLessThan(calls.findIndex((l) => l.includes('compare.js')));
    expect(calls.filter((l) => l.startsWith('compute-sanitizer'))).toHaveLength(4);
    const summary = readFileSync(path.join(c.out, 'summary.txt'), 'utf8');
    expect(summary).toMatch(/check:cuda exit 1: 1 of 2 checks passed or informational, 1 failed/);
    expect(summary).toMatch(/r18-b512-fp32: 1000\.00 img\/s ours, 1100\.00 img\/s pytorch; ratio ours\/pytorch, training step: 0\.91;/);
    expect(summary).toMatch(/sanitizer racecheck: exit 0, ========= ERROR SUMMARY: 0 errors/);
    expect(r.stdout).toMatch(/^FAIL kernels conv 3x3\/1: error: .*CUDNN_STATUS_EXECUTION_FAILED/m);
    const files = readdirSync(c.out);
    expect(files.length).toBeLessThanOrEqual(8);
    expect(files).toEqual(expect.arrayContaining(['summary.txt', 'sanitizer.txt', 'logs.tar.gz']));
  });

  it('skips a part that no longer fits the time budget, and says so', () => {
    const c = checkout();
    const r = runScript(c, { CUDA_RUN_PARTS: 'doctor check bench', CUDA_RUN_BUDGET: '30' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/== doctor: skipped, \d+ s of the 30 s budget left/);
    expect(r.stdout).toMatch(/== r50-224-b64-fp32: skipped/);
    // A skipped part reports nothing else.
    expect(r.stdout).not.toMatch(/check:cuda exit/);
  });
});
