/**
 * Loads an engine's compiled addon from the package's build folder, or says why it cannot: not built
 * (with the build script's own reason when it left one) or built but failing to load.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { buildStatusReason, packageRoot } from './package_root.js';

export type AddonLoad<T> = { ok: true; addon: T } | { ok: false; reason: string; hint: string };

export interface BuiltAddon<T> {
  /** The .node file, relative to the package root. */
  file: string;
  /** The status file its build script writes when it skips or fails the build. */
  status: string;
  /** What the reason calls the addon: `${what} not built: ...`. */
  what: string;
  /** How to build it. */
  hint: string;
  /** How to mend a file that exists but fails to load; `hint` when not given. */
  loadHint?: string;
  /** Runs just before the file is loaded (settings its libraries read once, at load). */
  beforeLoad?: () => void;
  /** Throws when the module loaded is not the addon expected. */
  check(addon: T): void;
}

export function loadBuiltAddon<T>(spec: BuiltAddon<T>): AddonLoad<T> {
  let root: string;
  try {
    root = packageRoot();
  } catch (e) {
    return { ok: false, reason: (e as Error).message, hint: spec.hint };
  }
  const file = path.join(root, spec.file);
  if (!existsSync(file)) {
    const why = buildStatusReason(root, spec.status) ?? `${spec.file} does not exist`;
    return { ok: false, reason: `${spec.what} not built: ${why}`, hint: spec.hint };
  }
  spec.beforeLoad?.();
  try {
    const addon = createRequire(import.meta.url)(file) as T;
    spec.check(addon);
    return { ok: true, addon };
  } catch (e) {
    const first = ((e as Error).message ?? String(e)).split('\n')[0];
    return { ok: false, reason: `${spec.file} failed to load: ${first}`, hint: spec.loadHint ?? spec.hint };
  }
}
