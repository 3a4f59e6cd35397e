/**
 * Running out of GPU memory is a configuration that does not fit the card, not a crash: the CUDA
 * engine's allocator throws an error with code SIMTRIP_GPU_OOM (requested, free, total bytes), and
 * the commands turn it into one line that says what to change. Nothing was updated by the failed
 * step, so the last good checkpoint stays as it was.
 */
import { UserError } from '../util/errors.js';

export interface GpuOutOfMemory {
  requested: number;
  free: number;
  total: number;
}

/** The allocation that failed, when `e` is the CUDA engine's out-of-memory error. */
export function gpuOutOfMemory(e: unknown): GpuOutOfMemory | null {
  const err = e as { code?: unknown; requested?: unknown; free?: unknown; total?: unknown } | null;
  if (!err || err.code !== 'SIMTRIP_GPU_OOM') return null;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return { requested: n(err.requested), free: n(err.free), total: n(err.total) };
}

export class GpuOutOfMemoryError extends UserError {
  override name = 'GpuOutOfMemoryError';
}

function bytesText(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  return `${(bytes / 1024).toFixed(0)} KiB`;
}

/**
 * One line: the batch size that did not fit, the memory asked for and free, and the keys to change.
 * `also` names further remedies (e.g. engine.precision: mixed16 where it stores activations in half).
 */
export function explainGpuOutOfMemory(oom: GpuOutOfMemory, batchKey: string, batchSize: number, also: string[] = []): GpuOutOfMemoryError {
  const total = oom.total ? ` of ${bytesText(oom.total)}` : '';
  const fixes = [`lower ${batchKey} (now ${batchSize})`, ...also].join(' or ');
  return new GpuOutOfMemoryError(
    `GPU out of memory at ${batchKey} ${batchSize}: an allocation of ${bytesText(oom.requested)} found ${bytesText(oom.free)} free${total}; ${fixes}. The last good checkpoint is kept.`,
  );
}

/** Runs f, turning the engine's out-of-memory error into the one-line user error. */
export function withGpuMemoryHint<T>(f: () => T, batchKey: string, batchSize: number, also: string[] = []): T {
  try {
    return f();
  } catch (e) {
    const oom = gpuOutOfMemory(e);
    if (oom) throw explainGpuOutOfMemory(oom, batchKey, batchSize, also);
    throw e;
  }
}
