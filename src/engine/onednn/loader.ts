/**
 * Entry point of the native oneDNN engine (issue 3). Until the native addon exists this reports why
 * the engine is unavailable, so `auto` skips it and `simtrip doctor` can say so.
 */
export type OnednnLoad = { ok: true; detail: string } | { ok: false; reason: string; hint: string };

export async function loadOnednn(): Promise<OnednnLoad> {
  return {
    ok: false,
    reason: 'the oneDNN engine is not part of this build yet',
    hint: 'use engine.backend: cpu',
  };
}
