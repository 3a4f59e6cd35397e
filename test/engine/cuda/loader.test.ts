/**
 * Loading the CUDA engine: on a machine without a GPU it must fail fast with the reason and the fix,
 * and `auto` must pass over it to the next engine; the library search and the driver diagnosis.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCuda, describeDriverProblem, describeDevice } from '../../../src/engine/cuda/loader.js';
import { findLibraries, preloadsFor } from '../../../src/engine/cuda/libraries.js';
import { ADDON_FILES, loadCudaAddon } from '../../../src/engine/cuda/native.js';
import { packageRoot } from '../../../src/engine/package_root.js';
import { AUTO_ORDER, probeEngines } from '../../../src/engine/engine.js';

const gpuBuilt = existsSync(path.join(packageRoot(), ADDON_FILES.cuda.file));
const gpuAddon = loadCudaAddon('cuda');
const hasGpu = gpuAddon.ok && (() => {
  try {
    gpuAddon.addon.init(0, 0, '', '');
    return true;
  } catch {
    return false;
  }
})();

describe('the CUDA engine loader', () => {
  it('is the first engine auto tries', () => {
    expect(AUTO_ORDER[0]).toBe('cuda');
  });

  it('refuses with SIMTRIP_CUDA_DISABLE=1', async () => {
    process.env.SIMTRIP_CUDA_DISABLE = '1';
    try {
      const r = await loadCuda();
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(/SIMTRIP_CUDA_DISABLE/);
    } finally {
      delete process.env.SIMTRIP_CUDA_DISABLE;
    }
  });

  // A GPU addon that nvcc built must load (an unresolved symbol would only show on a GPU machine).
  it.skipIf(!gpuBuilt)('loads the GPU build wherever it was built', () => {
    expect(gpuAddon.ok ? 'loaded' : gpuAddon.reason).toBe('loaded');
  });

  it.skipIf(hasGpu || !gpuBuilt)('fails fast without a GPU, naming the missing driver and the fix', async () => {
    const t0 = performance.now();
    const r = await loadCuda();
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toMatch(/driver|device/i);
      expect(r.hint).toMatch(/NVIDIA driver/);
    }
  });

  it('lists every engine in doctor, cuda with the reason it is unavailable', async () => {
    const probes = await probeEngines();
    const cuda = probes.find((p) => p.engine === 'cuda');
    expect(cuda).toBeDefined();
    if (!hasGpu) {
      expect(cuda!.available).toBe(false);
      expect(cuda!.detail.length).toBeGreaterThan(10);
      expect(cuda!.hint?.length).toBeGreaterThan(10);
    }
  });
});

describe('driver diagnosis', () => {
  const insufficient = 'no usable CUDA device: CUDA driver version is insufficient for CUDA runtime version';

  it('says when no NVIDIA driver is installed', () => {
    const msg = describeDriverProblem(insufficient, () => {
      throw new Error('spawn nvidia-smi ENOENT');
    });
    expect(msg).toMatch(/no NVIDIA driver is installed/);
  });

  it('names a driver too old for the CUDA 13 runtime', () => {
    const msg = describeDriverProblem(insufficient, () => 'NVIDIA A100-SXM4-40GB, 535.104.05\n');
    expect(msg).toBe('NVIDIA A100-SXM4-40GB has driver 535.104.05, too old for the CUDA 13 runtime (needs R580 or newer)');
  });

  it('keeps the runtime message when the driver is new enough', () => {
    const msg = describeDriverProblem('no CUDA device found', () => 'NVIDIA H200, 580.95.05\n');
    expect(msg).toMatch(/no CUDA device found \(nvidia-smi: NVIDIA H200, driver 580\.95\.05\)/);
  });

  it('describes a device with every version doctor promises', () => {
    const line = describeDevice({
      name: 'NVIDIA H200',
      computeCapability: '9.0',
      smCount: 132,
      totalBytes: 150 * 2 ** 30,
      driverVersion: 13000,
      runtimeVersion: 13000,
      cudnnVersion: 91400,
      cublasVersion: 130100,
      cudnnPath: '/usr/lib/x86_64-linux-gnu/libcudnn.so.9',
      cublasPath: '/usr/local/cuda/lib64/libcublas.so.13',
      emulated: false,
    });
    expect(line).toBe('NVIDIA H200 (sm_90, 150.0 GiB), driver CUDA 13.0, runtime 13.0, cuDNN 9.14.0, cuBLAS 13.1.0');
  });
});

describe('the cuDNN / cuBLAS search', () => {
  it('tries CUDNN_PATH, CUDA_HOME and LD_LIBRARY_PATH folders before the bare soname', () => {
    const root = mkdtempSync(path.join(tmpdir(), 'simtrip-libs-'));
    const cudnnDir = path.join(root, 'cudnn', 'lib');
    const cudaLib = path.join(root, 'cuda', 'lib64');
    const ld = path.join(root, 'ld');
    for (const d of [cudnnDir, cudaLib, ld]) mkdirSync(d, { recursive: true });
    writeFileSync(path.join(cudnnDir, 'libcudnn.so.9'), '');
    writeFileSync(path.join(cudaLib, 'libcublas.so.13'), '');
    writeFileSync(path.join(ld, 'libcublas.so.12'), '');
    const found = findLibraries({ CUDNN_PATH: path.join(root, 'cudnn'), CUDA_HOME: path.join(root, 'cuda'), LD_LIBRARY_PATH: ld }, false);
    expect(found.cudnn[0]).toBe(path.join(cudnnDir, 'libcudnn.so.9'));
    expect(found.cudnn.at(-1)).toBe('libcudnn.so.9');
    expect(found.cublas.slice(0, 2)).toEqual([path.join(cudaLib, 'libcublas.so.13'), path.join(ld, 'libcublas.so.12')]);
    expect(found.searched).toContain(cudnnDir);
  });
});

describe('the libraries loaded before cuDNN and cuBLAS', () => {
  it('are those of the major in use, from the same folder, in dependency order, never another major\'s', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'simtrip-both-majors-'));
    const files = [
      // cuDNN 8 and 9 side by side, as a pip and an apt install leave them; readdir order is not load order.
      'libcudnn.so.8', 'libcudnn_ops_infer.so.8', 'libcudnn_cnn_infer.so.8', 'libcudnn_adv.so.8', 'libcudnn_ops.so.8',
      'libcudnn.so.9', 'libcudnn_adv.so.9', 'libcudnn_cnn.so.9', 'libcudnn_ops.so.9', 'libcudnn_heuristic.so.9',
      'libcudnn_engines_precompiled.so.9.1.0', 'libcudnn_engines_precompiled.so.9.10.2', 'libcudnn_graph.so.9',
      'libcublas.so.12', 'libcublasLt.so.12', 'libcublas.so.13', 'libcublasLt.so.13', 'libcublasLt.so.13.1.0',
    ];
    for (const f of files) writeFileSync(path.join(dir, f), '');
    const at = (...names: string[]) => names.map((n) => path.join(dir, n));
    expect(preloadsFor(path.join(dir, 'libcudnn.so.9'))).toEqual(
      at('libcudnn_graph.so.9', 'libcudnn_engines_precompiled.so.9.10.2', 'libcudnn_heuristic.so.9', 'libcudnn_ops.so.9', 'libcudnn_cnn.so.9', 'libcudnn_adv.so.9'),
    );
    expect(preloadsFor(path.join(dir, 'libcublas.so.13'))).toEqual(at('libcublasLt.so.13'));
    expect(preloadsFor(path.join(dir, 'libcublas.so.12'))).toEqual(at('libcublasLt.so.12'));
    expect(preloadsFor('libcudnn.so.9')).toEqual([]);

    const found = findLibraries({ CUDNN_PATH: dir, LD_LIBRARY_PATH: '' }, false);
    const cudnn = found.cudnn[0]!.split('\t');
    expect(cudnn.at(-1)).toBe(path.join(dir, 'libcudnn.so.9'));
    expect(cudnn.every((f) => /\.so\.9(\.|$)/.test(f))).toBe(true);
    expect(found.cublas.slice(0, 2)).toEqual([at('libcublasLt.so.13', 'libcublas.so.13').join('\t'), at('libcublasLt.so.12', 'libcublas.so.12').join('\t')]);
  });
});
