/**
 * cuDNN's algorithm searches kept across processes (SIMTRIP_CUDA_CONV_PLANS=FILE): a device run's
 * check:cuda, benchmarks and training runs are separate processes on the same shapes, and each search
 * waits for the GPU. The file's first line is the engine's identity (identity.ts); searches made with
 * another device, driver, library or build are ignored and replaced.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { CudaAddon } from './native.js';

/** Loads the file's searches when they were made with `identity`; returns how many. */
export function loadConvPlanFile(addon: CudaAddon, identity: string, file: string): number {
  if (!existsSync(file)) return 0;
  const [head, ...rest] = readFileSync(file, 'utf8').split('\n');
  return head === `# ${identity}` ? addon.loadConvPlans(rest.join('\n')) : 0;
}

/** Writes this process's searches (loaded ones included) to the file. */
export function saveConvPlanFile(addon: CudaAddon, identity: string, file: string): void {
  writeFileSync(file, `# ${identity}\n${addon.saveConvPlans()}`);
}

/** Loads the file now and saves it when the process exits (an unwritable file only costs searches). */
export function keepConvPlans(addon: CudaAddon, identity: string, file: string): number {
  const loaded = loadConvPlanFile(addon, identity, file);
  process.on('exit', () => {
    try {
      saveConvPlanFile(addon, identity, file);
    } catch {
      // nothing to do at exit
    }
  });
  return loaded;
}
