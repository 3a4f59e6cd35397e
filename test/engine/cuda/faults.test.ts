/**
 * A GPU fault never aborts Node: the host build injects the failures a GPU reports (a free that fails
 * in a destructor, a kernel that faults after its launch returned, a synchronisation that reports an
 * earlier kernel's failure), and each must come back as the engine's error (code SIMTRIP_GPU_ERROR) at
 * the next call that checks, with the process alive. `simtrip train` on the engine then exits 1 with
 * one line, leaves the last good checkpoint as it was and releases the run directory's lock.
 */
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EngineInfo, EngineName } from '../../../src/engine/engine.js';
import { tf } from '../../../src/engine/tf.js';
import type { CudaAddon, HostEmulation } from '../../../src/engine/cuda/native.js';
import { resetExitCodeAfterEach, runCli } from '../../cli/run_cli.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './helpers.js';

// The CLI runs on the CUDA host build whatever the config asks for.
vi.mock('../../../src/engine/engine.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../../src/engine/engine.js')>();
  return {
    ...actual,
    initEngine: async (requested: EngineName): Promise<EngineInfo> => {
      await tf.setBackend('cuda-host');
      return { requested, engine: 'cuda', tfBackend: 'cuda-host', skipped: [], detail: 'host build' };
    },
  };
});

const load = await loadCudaHost();
const addon = () => hostAddon() as CudaAddon & HostEmulation & { maxPoolGrad(dy: number, x: number, out: number, params: Int32Array): void };

resetExitCodeAfterEach();
afterEach(() => {
  if (load.ok) addon().emulate('clear');
});

/** The error `f` throws (or the promise rejects with), for its code and message. */
async function failure(f: () => unknown): Promise<Error & { code?: string }> {
  try {
    await f();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a GPU error, got none');
}

describe.skipIf(!load.ok)('GPU faults on the CUDA host build', () => {
  beforeAll(async () => {
    await tf.setBackend(CUDA_HOST);
  });

  it('a free that fails inside a native call (a scratch buffer\'s destructor) is raised by the next checked call', async () => {
    const a = addon();
    // maxPoolGrad frees its scratch (the winners) in a destructor: that free is the one that fails.
    const params = Int32Array.from([1, 4, 4, 1, 2, 2, 2, 2, 2, 2, 0, 0]);
    const x = a.alloc(16 * 4), dy = a.alloc(4 * 4), dx = a.alloc(16 * 4);
    a.emulate('faultFree', 0);
    expect(() => a.maxPoolGrad(dy, x, dx, params)).not.toThrow();
    const e = await failure(() => a.alloc(4));
    expect(e.code).toBe('SIMTRIP_GPU_ERROR');
    expect(e.message).toMatch(/the GPU failed: cudaFreeAsync: an illegal memory access was encountered/);
    // Frees never throw, even now: a dispose during error handling must not hide the first error.
    expect(() => a.free(dx)).not.toThrow();
    a.emulate('clear');
    for (const p of [x, dy]) a.free(p);
  });

  it('a kernel that faults after its launch returned is reported by the next read, and by every call after it', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    addon().emulate('faultLaunch', 0);
    const y = tf.add(x, x); // its launch returns: on a GPU the fault shows later
    const sync = await failure(() => y.dataSync());
    expect(sync.code).toBe('SIMTRIP_GPU_ERROR');
    expect(sync.message).toMatch(/the GPU failed: kernel \w+: an illegal memory access was encountered .*cannot continue in this process/);
    const async = await failure(() => x.data());
    expect(async.code).toBe('SIMTRIP_GPU_ERROR');
    expect(() => tf.dispose([x, y])).not.toThrow();
    addon().emulate('clear');
    expect(Array.from(tf.tidy(() => tf.mul(tf.tensor1d([2]), 3)).dataSync())).toEqual([6]);
  });

  it('a synchronisation that reports a failure throws the engine\'s error instead of aborting', async () => {
    const x = tf.tensor1d([1, 2, 3]);
    addon().emulate('faultSync', 0);
    const e = await failure(() => x.dataSync());
    expect(e.code).toBe('SIMTRIP_GPU_ERROR');
    expect(e.message).toMatch(/a GPU kernel failed before this read: an illegal memory access was encountered/);
    x.dispose();
  });
});

describe.skipIf(!load.ok)('simtrip train when the GPU faults mid-run', () => {
  it('exits 1 with one line, saves nothing, leaves the last good checkpoint as it was and the run directory unlocked; --resume then goes on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'simtrip-gpu-fault-'));
    const config = join(dir, 'tiny.json');
    await writeFile(
      config,
      JSON.stringify({
        name: 'tiny',
        seed: 3,
        engine: { backend: 'cuda' },
        data: { kind: 'synthetic', image_size: 16, synthetic: { train_size: 8, test_size: 8, size: 16 } },
        model: { arch: 'resnet18', stem: 'cifar', width: 4 },
        method: { proj_layers: 2, proj_dim: 16, pred_hidden: 4 },
        train: { epochs: 1, batch_size: 8, checkpoint_every: 1, knn_every: 0, log_every: 1 },
      }),
    );
    const runDir = join(dir, 'run');
    const first = await runCli('train', '--config', config, '--run-dir', runDir);
    expect(first.code).toBe(0);
    const last = join(runDir, 'checkpoints', 'last.safetensors');
    const good = await readFile(last);
    const files = await readdir(join(runDir, 'checkpoints'));

    // The second epoch's third kernel faults.
    addon().emulate('faultLaunch', 2);
    const r = await runCli('train', '--config', config, '--run-dir', runDir, '--resume', '--set', 'train.epochs=2');
    expect(r.code).toBe(1);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('simtrip:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^simtrip: failed: GPU error: .*kernel \w+: an illegal memory access was encountered .*the last good checkpoint is kept/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(await readFile(last)).toEqual(good);
    expect(await readdir(join(runDir, 'checkpoints'))).toEqual(files);
    // The failed run let go of the run directory's lock, and left its log ending at the checkpoint:
    // the next --resume (the GPU working again) takes over without a word about a stale lock and
    // logs every step once.
    expect((await readdir(runDir)).filter((f) => f.startsWith('train.lock'))).toEqual([]);
    addon().emulate('clear');
    const again = await runCli('train', '--config', config, '--run-dir', runDir, '--resume', '--set', 'train.epochs=2');
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(/lock/);
    const metrics = (await readFile(join(runDir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { kind: string; step: number });
    expect(metrics.map((m) => `${m.kind}@${m.step}`)).toEqual(['train@1', 'epoch@1', 'train@2', 'epoch@2']);
  });
});
