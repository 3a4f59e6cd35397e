/**
 * Where simtrip is installed, and what its native build left there. Modules run both as src/**\/*.ts
 * (vitest) and bundled in dist/, so the package root is found by walking up to package.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageRoot(from: string = fileURLToPath(import.meta.url)): string {
  let dir = path.dirname(from);
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${from}`);
    dir = parent;
  }
}

/**
 * Why an addon was not built, from the status file scripts/build-native.mjs writes next to it (the
 * path relative to the package root), or null when there is none.
 */
export function buildStatusReason(root: string, statusFile: string): string | null {
  const file = path.join(root, statusFile);
  if (!existsSync(file)) return null;
  try {
    const status = JSON.parse(readFileSync(file, 'utf8')) as { reason?: unknown };
    return typeof status.reason === 'string' ? status.reason : null;
  } catch {
    return null;
  }
}
