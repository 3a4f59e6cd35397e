/**
 * Picks and initialises the TensorFlow.js backend. This is the only module that imports backend
 * packages; everything else computes through `tf` from ./tf.js.
 *
 * auto = cuda -> tensorflow-gpu -> tensorflow -> onednn -> cpu. wasm is never picked by auto: it cannot
 * train conv nets (no Conv2DBackpropFilter) and is single-threaded in Node. cuda costs a machine
 * without a GPU a few milliseconds: the addon loads, finds no driver, and auto moves on.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { createRequire } from 'node:module';
import { tf } from './tf.js';
import { UserError } from '../util/errors.js';
import { loadOnednn } from './onednn/loader.js';
import { setOnednnWinograd } from './onednn/native.js';
import { loadCuda } from './cuda/loader.js';
import type { CudaBackend } from './cuda/backend.js';
import { engineIdentity } from './cuda/identity.js';
import { selfCheck, type SelfCheckResult } from './cuda/self_check.js';

export const ENGINE_NAMES = ['auto', 'cuda', 'tensorflow-gpu', 'tensorflow', 'onednn', 'wasm', 'cpu'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
export type ConcreteEngine = Exclude<EngineName, 'auto'>;

/** Order in which `auto` tries engines. */
export const AUTO_ORDER: readonly ConcreteEngine[] = ['cuda', 'tensorflow-gpu', 'tensorflow', 'onednn', 'cpu'];

/** engine.tf32: where the CUDA engine may use TF32 tensor cores for float32 work. */
export const TF32_MODES = ['convs', 'all', 'off'] as const;
export type Tf32Mode = (typeof TF32_MODES)[number];

/**
 * engine.winograd: where the onednn engine may run 3x3 convs as Winograd F(4x4, 3x3) (AVX-512 CPUs;
 * elsewhere they stay direct): in inference plans only, also in training, or nowhere.
 */
export const WINOGRAD_MODES = ['inference', 'all', 'off'] as const;
export type WinogradMode = (typeof WINOGRAD_MODES)[number];

/** Which engines can compute gradients of conv nets (i.e. train). */
export const CAN_TRAIN: Record<ConcreteEngine, boolean> = {
  cuda: true,
  'tensorflow-gpu': true,
  tensorflow: true,
  onednn: true,
  wasm: false,
  cpu: true,
};

export interface EngineInfo {
  /** What the user asked for. */
  requested: EngineName;
  /** What is running. */
  engine: ConcreteEngine;
  /** tfjs backend name (tf.getBackend()). */
  tfBackend: string;
  /** One line per engine that was tried and not used, with the reason. */
  skipped: string[];
  /** Extra detail, e.g. device or thread count. */
  detail: string;
  /** Lines every command prints, verbose or not: an engine auto passed over because it is broken. */
  notices?: string[];
}

export interface ProbeResult {
  engine: ConcreteEngine;
  available: boolean;
  /** Why not, or what it is. */
  detail: string;
  /** How to enable it, when unavailable. */
  hint?: string;
}

const require = createRequire(import.meta.url);

function packageInstalled(name: string): boolean {
  try {
    require.resolve(`${name}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** True when the CUDA 11 / cuDNN 8 libraries tfjs-node-gpu links against are visible to the loader. */
export function cudaLibrariesFound(): { ok: boolean; missing: string[] } {
  const wanted = ['libcudart.so.11.0', 'libcudnn.so.8'];
  let cache = '';
  try {
    cache = execFileSync('ldconfig', ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    cache = '';
  }
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const missing = wanted.filter((lib) => !cache.includes(lib) && !dirs.some((d) => existsSync(`${d}/${lib}`)));
  return { ok: missing.length === 0, missing };
}

/** broken: the engine loads but computes wrongly here (a failed self-check), which auto says out loud. */
type Activation = { ok: true; detail: string } | { ok: false; reason: string; hint?: string; broken?: boolean };

interface ActivateOptions {
  /** Run the CUDA engine's self-check again instead of trusting its cached result. */
  recheck?: boolean;
}

function describeSelfCheck(c: SelfCheckResult): string {
  return c.cached ? `self-check passed (cached, run ${c.at.slice(0, 16).replace('T', ' ')} UTC)` : `self-check passed (${c.ms} ms)`;
}

async function tryActivate(engine: ConcreteEngine, opts: ActivateOptions = {}): Promise<Activation> {
  switch (engine) {
    case 'cuda': {
      const r = await loadCuda();
      if (!r.ok) return { ok: false, reason: r.reason, hint: r.hint };
      if (!(await tf.setBackend(r.backendName))) return { ok: false, reason: 'cuda backend did not initialise' };
      // Never trust an engine that has not shown it computes correctly on this GPU, driver and libraries.
      const check = await selfCheck(r.backendName, engineIdentity(r.device, r.flavour), { recheck: opts.recheck });
      if (!check.ok) {
        const when = check.cached ? ` (cached result of ${check.at.slice(0, 16).replace('T', ' ')} UTC)` : '';
        return {
          ok: false,
          reason: `its self-check failed on this machine${when}: ${check.kernel}: ${check.error}`,
          hint: "see 'simtrip doctor'; 'simtrip doctor --recheck' runs the check again after a driver or library change",
          broken: true,
        };
      }
      return { ok: true, detail: `${r.detail}; ${describeSelfCheck(check)}` };
    }
    case 'tensorflow-gpu': {
      if (!packageInstalled('@tensorflow/tfjs-node-gpu')) return { ok: false, reason: 'tfjs-node-gpu not installed' };
      const cuda = cudaLibrariesFound();
      // Without CUDA 11.2/cuDNN 8.1 tfjs-node-gpu silently runs on the CPU: refuse rather than mislead.
      if (!cuda.ok) return { ok: false, reason: `CUDA libraries not found (${cuda.missing.join(', ')})` };
      process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
      try {
        await import('@tensorflow/tfjs-node-gpu' as string);
      } catch (e) {
        return { ok: false, reason: `tfjs-node-gpu failed to load: ${(e as Error).message.split('\n')[0]}` };
      }
      return (await tf.setBackend('tensorflow')) ? { ok: true, detail: 'libtensorflow with CUDA' } : { ok: false, reason: 'tensorflow backend did not initialise' };
    }
    case 'tensorflow': {
      if (!packageInstalled('@tensorflow/tfjs-node')) return { ok: false, reason: 'tfjs-node not installed' };
      try {
        await import('@tensorflow/tfjs-node' as string);
      } catch (e) {
        return { ok: false, reason: `tfjs-node failed to load: ${(e as Error).message.split('\n')[0]}` };
      }
      return (await tf.setBackend('tensorflow')) ? { ok: true, detail: 'libtensorflow (CPU)' } : { ok: false, reason: 'tensorflow backend did not initialise' };
    }
    case 'onednn': {
      const r = await loadOnednn();
      if (!r.ok) return { ok: false, reason: `${r.reason} (${r.hint})` };
      return (await tf.setBackend('onednn')) ? { ok: true, detail: r.detail } : { ok: false, reason: 'onednn backend did not initialise' };
    }
    case 'wasm': {
      try {
        await import('@tensorflow/tfjs-backend-wasm');
      } catch (e) {
        return { ok: false, reason: `tfjs-backend-wasm failed to load: ${(e as Error).message.split('\n')[0]}` };
      }
      return (await tf.setBackend('wasm')) ? { ok: true, detail: 'WebAssembly, single thread' } : { ok: false, reason: 'wasm backend did not initialise' };
    }
    case 'cpu': {
      await import('@tensorflow/tfjs-backend-cpu');
      return (await tf.setBackend('cpu')) ? { ok: true, detail: 'pure JavaScript kernels (slow)' } : { ok: false, reason: 'cpu backend did not initialise' };
    }
  }
}

let active: EngineInfo | null = null;

/**
 * Production mode: tfjs skips its debug checks and its console banner ("looks like you are running
 * TensorFlow.js in Node.js"), which would otherwise land in the middle of a progress bar.
 */
function productionMode(): void {
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
}

/**
 * Activates the requested engine. With `training`, engines that cannot train conv nets are refused.
 * An explicitly requested engine that is unavailable is a user error (exit 2), not a silent fallback.
 */
export interface EngineOptions {
  /** Refuse engines that cannot train conv nets. */
  training?: boolean;
  /** engine.tf32 (cuda only); 'convs' when left out. */
  tf32?: Tf32Mode;
  /** engine.winograd (onednn only); 'inference' when left out. */
  winograd?: WinogradMode;
}

export async function initEngine(requested: EngineName, opts: EngineOptions = {}): Promise<EngineInfo> {
  if (active && active.requested === requested) {
    applyMathModes(active, opts);
    return active;
  }
  productionMode();
  const skipped: string[] = [];
  const notices: string[] = [];
  const candidates: readonly ConcreteEngine[] = requested === 'auto' ? AUTO_ORDER : [requested];
  for (const engine of candidates) {
    if (opts.training && !CAN_TRAIN[engine]) {
      const why = `${engine} cannot train conv nets (no Conv2DBackpropFilter kernel); use cpu or onednn`;
      if (requested !== 'auto') throw new UserError(`engine.backend: got '${engine}', ${why}`);
      skipped.push(`${engine}: ${why}`);
      continue;
    }
    const r = await tryActivate(engine);
    if (r.ok) {
      active = { requested, engine, tfBackend: tf.getBackend(), skipped, detail: r.detail, ...(notices.length ? { notices } : {}) };
      applyMathModes(active, opts);
      return active;
    }
    if (requested !== 'auto') {
      const fix = r.hint ? ` To enable it: ${r.hint}.` : '';
      throw new UserError(`engine.backend: got '${engine}', which is unavailable here: ${r.reason}.${fix} Run 'simtrip doctor' for details, or use engine.backend: auto`);
    }
    skipped.push(`${engine}: ${r.reason}`);
    if (r.broken) notices.push(`engine: ${engine} ${r.reason}; auto moves on to the next engine. Run 'simtrip doctor' for details`);
  }
  throw new Error(`no engine could be initialised:\n  ${skipped.join('\n  ')}`);
}

/**
 * The engines' math modes: the CUDA engine's TF32 tensor cores (for convolutions, for everything, or
 * nowhere), the onednn engine's Winograd convs (in inference plans, also in training, or nowhere).
 */
function applyMathModes(engine: EngineInfo, opts: EngineOptions): void {
  const tf32 = opts.tf32 ?? 'convs';
  if (engine.engine === 'cuda') (tf.backend() as CudaBackend).setTf32(tf32 !== 'off', tf32 === 'all');
  // The inference plan runs on the onednn addon whatever the engine, so the mode is set wherever it loads.
  setOnednnWinograd(opts.winograd ?? 'inference');
}

export function activeEngine(): EngineInfo | null {
  return active;
}

/** Reports every engine's availability without switching away from the active one for long. */
export async function probeEngines(opts: ActivateOptions = {}): Promise<ProbeResult[]> {
  productionMode();
  const results: ProbeResult[] = [];
  for (const engine of ['cuda', 'tensorflow-gpu', 'tensorflow', 'onednn', 'wasm', 'cpu'] as const) {
    const r = await tryActivate(engine, opts);
    results.push(
      r.ok
        ? { engine, available: true, detail: r.detail }
        : { engine, available: false, detail: r.reason, hint: r.hint ?? hintFor(engine) },
    );
  }
  return results;
}

function hintFor(engine: ConcreteEngine): string | undefined {
  switch (engine) {
    case 'tensorflow-gpu':
      return 'npm install @tensorflow/tfjs-node-gpu@4.22.0 (needs internet at install, CUDA 11.2 + cuDNN 8.1, Node < 23)';
    case 'tensorflow':
      return 'npm install @tensorflow/tfjs-node@4.22.0 (needs internet at install to fetch libtensorflow, Node < 23)';
    case 'onednn':
      return 'apt-get install libdnnl-dev, then npm rebuild simtrip (or npm ci)';
    default:
      return undefined;
  }
}

export function machineSummary(): string {
  const gib = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown cpu'}), ${gib} GiB memory, Node ${process.version}`;
}
