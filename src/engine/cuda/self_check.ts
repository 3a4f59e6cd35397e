/**
 * The CUDA engine's self-check, run once per machine configuration before the engine is used: a
 * convolution forward and both its gradients (cuDNN), matrix products (cuBLAS), batch normalisation
 * forward and backward, element-wise ops with a reduction, and the fused SGD update, on small shapes
 * against the cpu backend's results, with TF32 off. About a second on a GPU (mostly cuDNN's first
 * searches), so a driver, library or build that computes garbage is found before a run trains on it.
 *
 * The result is cached per (GPU, driver, CUDA runtime, cuDNN, cuBLAS, addon build: identity.ts) in
 * $XDG_CACHE_HOME/simtrip/cuda-self-check.json (~/.cache/simtrip/ by default); `simtrip doctor` shows
 * it, and `simtrip doctor --recheck` runs it again.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../tf.js';
import { SGD_UPDATE, type SgdUpdateAttrs } from '../custom_kernels.js';
import { batchNormTrain } from '../../ops/batch_norm.js';
import { writeJsonAtomic } from '../../io/atomic.js';
import { relativeError } from '../../check/compare.js';
import type { CudaBackend } from './backend.js';

export interface SelfCheckResult {
  ok: boolean;
  /** The check that failed: 'conv forward', 'conv backward filter', 'matmul', ... */
  kernel?: string;
  /** Its error, or its relative error against the cpu backend and the limit. */
  error?: string;
  /** What was checked: the device, driver, libraries and addon build (the cache key's text). */
  identity: string;
  at: string;
  ms: number;
  /** Read from the cache rather than run now. */
  cached?: boolean;
}

/** Relative error allowed: float32 against float32 with different summation orders. */
const LIMIT = 1e-3;

/** Where results are kept: $XDG_CACHE_HOME/simtrip/, else ~/.cache/simtrip/. */
export function selfCheckCacheFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(base, 'simtrip', 'cuda-self-check.json');
}

interface CacheFile {
  version: 1;
  results: Record<string, SelfCheckResult>;
}

function readCache(file: string): CacheFile {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as CacheFile;
    if (parsed.version === 1 && parsed.results && typeof parsed.results === 'object') return parsed;
  } catch {
    // missing or damaged: start afresh
  }
  return { version: 1, results: {} };
}

const keyOf = (identity: string) => createHash('sha256').update(identity).digest('hex').slice(0, 16);

/** The cached result for this identity, if there is one. */
export function cachedSelfCheck(identity: string, file = selfCheckCacheFile()): SelfCheckResult | undefined {
  if (!existsSync(file)) return undefined;
  const hit = readCache(file).results[keyOf(identity)];
  return hit && hit.identity === identity ? { ...hit, cached: true } : undefined;
}

/**
 * The self-check's result for the CUDA backend `backendName` (registered, and active): from the cache
 * unless `recheck`, else run now and cached.
 */
export async function selfCheck(backendName: string, identity: string, opts: { recheck?: boolean; file?: string } = {}): Promise<SelfCheckResult> {
  const file = opts.file ?? selfCheckCacheFile();
  if (!opts.recheck) {
    const hit = cachedSelfCheck(identity, file);
    if (hit) return hit;
  }
  const result = await runChecks(backendName, identity);
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const cache = readCache(file);
    cache.results[keyOf(identity)] = result;
    await writeJsonAtomic(file, cache);
  } catch {
    // An unwritable cache only costs running the check again next time.
  }
  return result;
}

/** One check: f run on both backends from the same inputs; its outputs compared. */
interface Check {
  kernel: string;
  run: () => tf.Tensor[];
}

/** Values that vary smoothly and differ between neighbours, the same on every backend. */
function values(shape: number[], seed: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(seed + i * 0.731) + 0.25 * Math.cos(i * 0.117)), shape);
}

const CHECKS: Check[] = [
  {
    kernel: 'conv forward',
    run: () => {
      const x = values([2, 9, 9, 8], 1) as tf.Tensor4D;
      const w = values([3, 3, 8, 16], 2) as tf.Tensor4D;
      // Stride 2 'same' on an odd input pads symmetrically; on an even one it pads explicitly.
      return [tf.conv2d(x, w, 1, 'same'), tf.conv2d(x, w, 2, 'same'), tf.conv2d(tf.slice(x, [0, 0, 0, 0], [2, 8, 8, 8]), w, 2, 'same')];
    },
  },
  {
    kernel: 'conv backward data',
    run: () => {
      const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape: [2, 8, 8, 8] };
      return [tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: values([2, 4, 4, 16], 5), filter: values([3, 3, 8, 16], 4) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor];
    },
  },
  {
    kernel: 'conv backward filter',
    run: () => {
      const attrs = { strides: [2, 2], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [3, 3, 8, 16] };
      return [tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: values([2, 8, 8, 8], 3), dy: values([2, 4, 4, 16], 5) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor];
    },
  },
  {
    kernel: 'matmul',
    run: () => {
      const a = values([33, 40], 6) as tf.Tensor2D;
      const b = values([40, 24], 7) as tf.Tensor2D;
      return [tf.matMul(a, b), tf.matMul(b, a, true, true), tf.matMul(values([3, 5, 7], 8) as tf.Tensor3D, values([3, 7, 4], 9) as tf.Tensor3D)];
    },
  },
  {
    kernel: 'batch norm forward and backward',
    run: () => {
      const x = values([4, 6, 6, 12], 10);
      const gamma = values([12], 11);
      const beta = values([12], 12);
      const r = values([4, 6, 6, 12], 13);
      const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(batchNormTrain(a, g, b).y, r));
      const out = batchNormTrain(x, gamma, beta);
      return [out.y, out.mean, out.variance, ...tf.grads(f)([x, gamma, beta])];
    },
  },
  {
    kernel: 'element-wise ops and reductions',
    run: () => {
      const x = values([5, 7, 9], 14);
      return [tf.relu(tf.add(tf.mul(x, 1.5), 0.25)), tf.sum(tf.exp(x), [0, 2]), tf.mean(tf.square(x), -1), tf.max(x, 1)];
    },
  },
  {
    kernel: 'SGD update',
    run: () => {
      const w = values([1000], 15);
      const g = values([1000], 16);
      const buf = values([1000], 17);
      const attrs: SgdUpdateAttrs = { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, first: false };
      return tf.engine().runKernel(SGD_UPDATE, { w, g, buf }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    },
  },
];

/** The outputs of a check on one backend, read back. */
async function outputsOn(backend: string, check: Check): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(() => check.run());
  try {
    return outs.map((t) => t.dataSync() as Float32Array);
  } finally {
    tf.dispose(outs);
  }
}

async function runChecks(backendName: string, identity: string): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const done = (failure: { kernel: string; error: string } | null): SelfCheckResult => ({
    ok: failure === null,
    ...(failure ?? {}),
    identity,
    at: new Date().toISOString(),
    ms: Math.round(performance.now() - t0),
  });
  await import('@tensorflow/tfjs-backend-cpu');
  const backend = tf.engine().findBackend(backendName) as CudaBackend | null;
  backend?.setTf32(false, false);
  // SGD_UPDATE has no cpu kernel: its reference is the composition src/optim/sgd.ts makes elsewhere.
  const reference = (check: Check) => (check.kernel === 'SGD update' ? sgdReference() : outputsOn('cpu', check));
  try {
    for (const check of CHECKS) {
      let got: Float32Array[];
      try {
        got = await outputsOn(backendName, check);
      } catch (e) {
        return done({ kernel: check.kernel, error: ((e as Error).message ?? String(e)).split('\n')[0]! });
      }
      const want = await reference(check);
      const worst = Math.max(...want.map((w, i) => relativeError(got[i]!, w)));
      if (!(worst <= LIMIT)) return done({ kernel: check.kernel, error: `relative error ${worst.toExponential(2)} against the cpu backend (limit ${LIMIT})` });
    }
    return done(null);
  } finally {
    await tf.setBackend(backendName);
  }
}

/** The SGD check's update composed of standard ops on the cpu backend (PyTorch's rule). */
async function sgdReference(): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const outs = tf.tidy(() => {
    const w = values([1000], 15);
    const g = values([1000], 16);
    const buf = values([1000], 17);
    const d = tf.add(g, tf.mul(w, 5e-4));
    const b = tf.add(tf.mul(buf, 0.9), d);
    return [tf.sub(w, tf.mul(b, 0.1)), b];
  });
  try {
    return outs.map((t) => t.dataSync() as Float32Array);
  } finally {
    tf.dispose(outs);
  }
}
