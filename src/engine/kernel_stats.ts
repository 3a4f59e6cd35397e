/**
 * How often each kernel ran natively, and how often it fell back to the cpu backend's JavaScript
 * kernel, on whichever native engine is active. Fallbacks are silent by design (results stay right),
 * so tests and `npm run bench -- --profile 1` read these counts to prove the fast path is the one
 * that ran.
 */
export const nativeRuns = new Map<string, number>();
export const fallbackRuns = new Map<string, number>();

export function countNative(kernelName: string): void {
  nativeRuns.set(kernelName, (nativeRuns.get(kernelName) ?? 0) + 1);
}

export function countFallback(kernelName: string): void {
  fallbackRuns.set(kernelName, (fallbackRuns.get(kernelName) ?? 0) + 1);
}

export function resetKernelStats(): void {
  nativeRuns.clear();
  fallbackRuns.clear();
}
