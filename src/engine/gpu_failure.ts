/**
 * A failure of the GPU itself (an illegal address in a kernel, a launch failure, a library error): the
 * CUDA engine raises it as an Error with code SIMTRIP_GPU_ERROR at the next call that checks, never
 * aborting the process, and a command reports it as one line and exits 1. Nothing that failed was
 * saved: a checkpoint is written whole or not at all, so the last good one stays as it was.
 */
export function isGpuFailure(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'SIMTRIP_GPU_ERROR';
}

/** The one line a command prints for a GPU failure, or null when `e` is something else. */
export function describeGpuFailure(e: unknown): string | null {
  if (!isGpuFailure(e)) return null;
  const message = ((e as Error).message ?? String(e)).replace(/\s*\n\s*/g, ' ').trim();
  return `GPU error: ${message}. Nothing was saved after it (the last good checkpoint is kept); run 'simtrip doctor' to check the CUDA engine, or set engine.backend: onednn`;
}
