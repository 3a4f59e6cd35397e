/**
 * The CUDA engine in tests: its host build (build/Release/simtrip_cuda_host.node) registered as the
 * tfjs backend 'cuda-host'. Same TypeScript, same N-API layer, same kernel sources as the GPU build;
 * the kernels run under the CUDA emulator and cuDNN/cuBLAS are replaced by reference loops.
 */
import { tf } from '../../../src/engine/tf.js';
import { loadCuda, type CudaLoad } from '../../../src/engine/cuda/loader.js';
import { loadCudaAddon, type CudaAddon } from '../../../src/engine/cuda/native.js';
import { relativeError, useCpuBackend } from '../../helpers.js';

export const CUDA_HOST = 'cuda-host';

export async function loadCudaHost(): Promise<CudaLoad> {
  await useCpuBackend();
  const r = await loadCuda({ flavour: 'host' });
  if (!r.ok) console.warn(`CUDA host-emulation tests skipped: ${r.reason} (${r.hint})`);
  return r;
}

export function hostAddon(): CudaAddon {
  const r = loadCudaAddon('host');
  if (!r.ok) throw new Error(r.reason);
  return r.addon;
}

/** Runs f on `backend` and returns its result's values (the tensors are disposed). */
export async function valuesOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Array<Float32Array | Int32Array | Uint8Array>> {
  await tf.setBackend(backend);
  const out = tf.tidy(f);
  const list = Array.isArray(out) ? out : [out];
  const values = await Promise.all(list.map((t) => t.data() as Promise<Float32Array | Int32Array | Uint8Array>));
  tf.dispose(list);
  return values;
}

/**
 * f on the cuda-host backend against f on cpu: same shapes (checked through the values' lengths) and
 * values within `tolerance` relative error (integers and booleans exactly).
 */
export async function expectSameAsCpu(f: () => tf.Tensor | tf.Tensor[], tolerance = 1e-5): Promise<number> {
  const ref = await valuesOn('cpu', f);
  const got = await valuesOn(CUDA_HOST, f);
  if (ref.length !== got.length) throw new Error(`${got.length} outputs, cpu gave ${ref.length}`);
  let worst = 0;
  ref.forEach((r, i) => {
    const g = got[i]!;
    if (g.length !== r.length) throw new Error(`output ${i}: ${g.length} values, cpu gave ${r.length}`);
    if (!(r instanceof Float32Array)) {
      if (g.constructor !== r.constructor) throw new Error(`output ${i}: ${g.constructor.name}, cpu gave ${r.constructor.name}`);
      for (let k = 0; k < r.length; k++) if (g[k] !== r[k]) throw new Error(`output ${i}[${k}]: ${g[k]}, cpu gave ${r[k]}`);
      return;
    }
    for (let k = 0; k < r.length; k++) {
      if (Number.isNaN(r[k]!) !== Number.isNaN(g[k]!)) throw new Error(`output ${i}[${k}]: ${g[k]}, cpu gave ${r[k]}`);
      if (!Number.isFinite(r[k]!) && !Number.isNaN(r[k]!) && r[k] !== g[k]) throw new Error(`output ${i}[${k}]: ${g[k]}, cpu gave ${r[k]}`);
    }
    const finite = (a: ArrayLike<number>) => Array.from(a, (v) => (Number.isFinite(v) ? v : 0));
    const err = relativeError(finite(g), finite(r));
    worst = Math.max(worst, err);
    if (err > tolerance) throw new Error(`output ${i}: relative error ${err.toExponential(2)} > ${tolerance}`);
  });
  return worst;
}
