/** Finds and loads the compiled addon (build/Release/simtrip_onednn.node). */
import { loadBuiltAddon, type AddonLoad } from '../built_addon.js';
import type { WinogradMode } from '../engine.js';

/** The functions exported by native/onednn/addon.cc. Kernels write into the `out` arrays they are given. */
export interface NativeAddon {
  /**
   * batchNormRelu: batchNormForward/Backward take the fused-ReLU arguments; winograd: oneDNN has a
   * Winograd conv kernel on this CPU (AVX-512). Both absent from older builds.
   */
  info(): { version: string; threads: number; runtime: string; batchNormRelu?: boolean; winograd?: boolean };
  convImpl(params: Int32Array): string;
  /** engine.winograd: whether inference plans and training convs may use Winograd (absent from older builds). */
  setWinograd?(inference: boolean, training: boolean): void;
  convForward(x: Float32Array, filter: Float32Array, bias: Float32Array | null, out: Float32Array, params: Int32Array): void;
  convBackwardData(dy: Float32Array, filter: Float32Array, out: Float32Array, params: Int32Array): void;
  convBackwardWeights(x: Float32Array, dy: Float32Array, out: Float32Array, params: Int32Array): void;
  matmul(a: Float32Array, b: Float32Array, bias: Float32Array | null, out: Float32Array, params: Int32Array): void;
  maxPool(x: Float32Array, out: Float32Array, params: Int32Array): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, out: Float32Array, params: Int32Array): void;
  // Optional: an addon built before native/onednn/batch_norm.cc existed lacks them (params: [rows, channels]).
  // relu: a ReLU fused after the normalisation (batch norm only; group norm ignores it).
  batchNormForward?(x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array, params: Int32Array, eps: number, relu?: boolean): void;
  batchNormBackward?(
    dy: Float32Array,
    x: Float32Array,
    gamma: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    dx: Float32Array,
    dgamma: Float32Array,
    dbeta: Float32Array,
    params: Int32Array,
    eps: number,
    // The fused ReLU's forward output (batch norm only), or null.
    y?: Float32Array | null,
  ): void;
  // Optional for the same reason (native/onednn/group_norm.cc; params: [N, HW, C, G], statistics per (n, g)).
  groupNormForward?: NativeAddon['batchNormForward'];
  groupNormBackward?: NativeAddon['batchNormBackward'];
  // Optional for the same reason. op codes: see native/onednn/eltwise.cc.
  eltwiseUnary?(x: Float32Array, out: Float32Array, op: number, alpha: number): void;
  eltwiseBinary?(a: Float32Array, b: Float32Array, out: Float32Array, op: number, params: Int32Array): void;
  reduceMid?(x: Float32Array, out: Float32Array, params: Int32Array, mean: boolean): void;
  // Optional for the same reason (native/onednn/sgd.cc). A null buf means the first step (buf' = d).
  sgdUpdate?(w: Float32Array, g: Float32Array, buf: Float32Array | null, wOut: Float32Array, bufOut: Float32Array, lr: number, momentum: number, weightDecay: number): void;
  // Optional for the same reason (native/onednn/eltwise.cc): out = x rounded to the float16 grid.
  roundToHalf?(x: Float32Array, out: Float32Array): void;
  // Optional for the same reason (native/onednn/plan.cc): the inference plan, see plan_encoding.ts.
  planCreate?(ops: Int32Array, eps: Float32Array, params: Float32Array[][], imageSize: number, microBatch: number): NativePlan;
  planRun?(plan: NativePlan, images: Float32Array, n: number, out: Float32Array): void;
  /** planRun off the main thread; one call per plan at a time, and the plan kept until it settles. */
  planRunAsync?(plan: NativePlan, images: Float32Array, n: number, out: Float32Array): Promise<void>;
  planInfo?(plan: NativePlan): string;
  planDispose?(plan: NativePlan): void;
}

/** An opaque handle to a native inference plan (freed by planDispose or when collected). */
export type NativePlan = { readonly __nativePlan: unique symbol };

export const ADDON_RELATIVE_PATH = 'build/Release/simtrip_onednn.node';
/** Written by scripts/build-native.mjs when it skips or fails the build, so the loader can say why. */
export const BUILD_STATUS_RELATIVE_PATH = 'build/simtrip_onednn.status.json';

export type NativeLoad = AddonLoad<NativeAddon>;

let cached: NativeLoad | null = null;
/** engine.winograd, applied to the addon when it loads and whenever it changes after. */
let winograd: WinogradMode = 'inference';

function applyWinograd(addon: NativeAddon): void {
  addon.setWinograd?.(winograd !== 'off', winograd === 'all');
}

export function loadNative(): NativeLoad {
  if (cached) return cached;
  cached = loadBuiltAddon<NativeAddon>({
    file: ADDON_RELATIVE_PATH,
    status: BUILD_STATUS_RELATIVE_PATH,
    what: 'native addon',
    hint: 'apt-get install libdnnl-dev && npm rebuild simtrip (or node scripts/build-native.mjs in a checkout)',
    loadHint: 'it links against libdnnl.so.2: apt-get install libdnnl-dev, then npm rebuild simtrip',
    // libgomp reads this once, when the addon pulls it in. Its default spin-waiting at the end of every
    // parallel region takes the CPU a descheduled worker needs as soon as anything else runs on the
    // machine: a SimSiam step on 2 busy cores measured 7.9 s spinning against 2.7 s passive. Parking
    // idle workers costs a futex wake per region, microseconds against kernels of milliseconds.
    beforeLoad: () => {
      process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
    },
    check: (addon) => addon.info(),
  });
  if (cached.ok) applyWinograd(cached.addon);
  return cached;
}

/**
 * engine.winograd for the oneDNN addon (the inference plan runs on it under any CPU engine). Recorded
 * without loading the addon, so an engine that never uses it (cuda) does not pull in oneDNN.
 */
export function setOnednnWinograd(mode: WinogradMode): void {
  winograd = mode;
  if (cached?.ok) applyWinograd(cached.addon);
}
