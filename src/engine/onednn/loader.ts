/**
 * Entry point of the native oneDNN engine (issue 3): loads build/Release/simtrip_onednn.node and
 * registers the tfjs backend 'onednn', or reports why it cannot, so `auto` skips it and
 * `simtrip doctor` can say so.
 */
import { loadNative } from './native.js';

export type OnednnLoad = { ok: true; detail: string } | { ok: false; reason: string; hint: string };

export async function loadOnednn(): Promise<OnednnLoad> {
  if (process.env.SIMTRIP_ONEDNN_DISABLE === '1') {
    return { ok: false, reason: 'disabled by SIMTRIP_ONEDNN_DISABLE=1', hint: 'unset SIMTRIP_ONEDNN_DISABLE' };
  }
  const native = loadNative();
  if (!native.ok) return native;
  // Imported only now so that a machine without the addon never pays for loading the kernels.
  const { registerOnednnBackend } = await import('./backend.js');
  try {
    registerOnednnBackend(native.addon);
  } catch (e) {
    return { ok: false, reason: `registering the onednn backend failed: ${(e as Error).message}`, hint: 'use engine.backend: cpu' };
  }
  const info = native.addon.info();
  return { ok: true, detail: `oneDNN ${info.version}, ${info.threads} thread${info.threads === 1 ? '' : 's'}` };
}
