/**
 * The CUDA engine's self-check, on its host build standing in for the GPU build
 * (SIMTRIP_CUDA_FLAVOUR=host) with the cache in a temporary XDG_CACHE_HOME: it passes and is cached;
 * an injected failing kernel or one that computes nothing is caught and named; an explicit
 * engine.backend: cuda then stops with a user error naming the kernel and the error, auto moves on with
 * one line naming simtrip doctor, and doctor shows the cached result.
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../../src/engine/engine.js';
import { tf } from '../../../src/engine/tf.js';
import type { CudaAddon, HostEmulation } from '../../../src/engine/cuda/native.js';
import { engineIdentity } from '../../../src/engine/cuda/identity.js';
import { cachedSelfCheck, selfCheck, selfCheckCacheFile } from '../../../src/engine/cuda/self_check.js';
import { runDoctor } from '../../../src/cli/doctor.js';
import { UserError } from '../../../src/util/errors.js';
import { CUDA_HOST, hostAddon, loadCudaHost } from './helpers.js';

const load = await loadCudaHost();
const addon = () => hostAddon() as CudaAddon & HostEmulation;
const saved = { flavour: process.env.SIMTRIP_CUDA_FLAVOUR, cache: process.env.XDG_CACHE_HOME };

beforeAll(async () => {
  process.env.SIMTRIP_CUDA_FLAVOUR = 'host';
  process.env.XDG_CACHE_HOME = await mkdtemp(join(tmpdir(), 'simtrip-cache-'));
});
afterAll(() => {
  for (const [k, v] of [['SIMTRIP_CUDA_FLAVOUR', saved.flavour], ['XDG_CACHE_HOME', saved.cache]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});
afterEach(() => {
  if (load.ok) addon().emulate('clear');
});

describe.skipIf(!load.ok)('the CUDA engine\'s self-check (host build)', () => {
  const identity = () => (load.ok ? engineIdentity(load.device, 'host') : '');

  it('keeps its results under $XDG_CACHE_HOME/simtrip, else ~/.cache/simtrip', () => {
    expect(selfCheckCacheFile({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/simtrip/cuda-self-check.json');
    expect(selfCheckCacheFile({ XDG_CACHE_HOME: 'relative' })).toMatch(/\.cache\/simtrip\/cuda-self-check\.json$/);
    expect(identity()).toMatch(/^host emulation .*; driver 0, runtime 0; cuDNN 0 ; cuBLAS 0 ; addon host \d+ bytes, /);
  });

  it('passes on a working engine, in well under a second here, and is cached for this identity only', async () => {
    const r = await selfCheck(CUDA_HOST, identity());
    expect(r).toMatchObject({ ok: true, identity: identity() });
    expect(r.cached).toBeUndefined();
    expect(existsSync(selfCheckCacheFile())).toBe(true);
    expect(cachedSelfCheck(identity())).toMatchObject({ ok: true, cached: true, at: r.at });
    expect(cachedSelfCheck(`${identity()}; another driver`)).toBeUndefined();
    expect(tf.getBackend()).toBe(CUDA_HOST);
  });

  it('names the kernel that fails, and the one that computes nothing', async () => {
    addon().emulate('failKernel', 'convBackwardFilter');
    const failed = await selfCheck(CUDA_HOST, identity(), { recheck: true });
    expect(failed).toMatchObject({ ok: false, kernel: 'conv backward filter' });
    expect(failed.error).toMatch(/convBackwardFilter.*too many resources requested for launch \(injected\)/);
    addon().emulate('clear');
    addon().emulate('skipKernel', 'sgdUpdate');
    const wrong = await selfCheck(CUDA_HOST, identity(), { recheck: true });
    expect(wrong).toMatchObject({ ok: false, kernel: 'SGD update' });
    expect(wrong.error).toMatch(/^relative error .* against the cpu backend \(limit 0\.001\)$/);
  });

  it('an explicit engine.backend: cuda stops with the kernel and the error; auto moves on with one line; doctor shows it', async () => {
    addon().emulate('failKernel', 'gemm');
    await selfCheck(CUDA_HOST, identity(), { recheck: true });
    addon().emulate('clear');
    // Cached: the engine stays refused until the check is run again.
    const explicit = await initEngine('cuda', { training: true }).catch((e: unknown) => e);
    expect(explicit).toBeInstanceOf(UserError);
    expect((explicit as Error).message).toMatch(/^engine\.backend: got 'cuda', which is unavailable here: its self-check failed on this machine \(cached result of .*\): matmul: .*gemm: too many resources requested for launch \(injected\)\..*simtrip doctor/);
    const auto = await initEngine('auto', { training: true });
    expect(auto.engine).not.toBe('cuda');
    expect(auto.notices).toHaveLength(1);
    expect(auto.notices![0]).toMatch(/^engine: cuda its self-check failed on this machine .*matmul.*; auto moves on to the next engine\. Run 'simtrip doctor' for details$/);
    const doctor = await runDoctor();
    expect(doctor).toMatch(/\n {2}no +cuda +its self-check failed on this machine \(cached result of .*\): matmul: /);
    expect(doctor).toContain(`cache    ${selfCheckCacheFile()}`);
    const rechecked = await runDoctor({ recheck: true });
    expect(rechecked).toMatch(/\n {2}ok +cuda +host emulation of the CUDA engine .*; self-check passed \(\d+ ms\)/);
    expect(await runDoctor()).toMatch(/\n {2}ok +cuda +.*; self-check passed \(cached, run /);
  });
});
