/**
 * SimSiam training throughput on the active engine: img/s of the training step alone (views augmented
 * beforehand) and with single-threaded augmentation in line, the time split (data / forward / backward
 * / optimizer), peak RSS and, on the GPU, the peak of GPU memory and whether it stays flat.
 *
 *   npm run bench -- [--engine auto] [--arch resnet18] [--width 64] [--size 32] [--batch 64]
 *                    [--stem cifar|imagenet] [--norm group|batch] [--precision fp32|mixed16]
 *                    [--method simsiam|simtriplet] [--proj-dim 2048] [--steps 5] [--warmup 1] [--profile 1]
 *                    [--tf32 convs|all|off] [--winograd inference|all|off]
 *
 * --profile 1 adds one profiled step: time per tfjs kernel, the share of kernel time that still runs
 * as JavaScript, and every kernel that fell back to the host (native engines; there should be none).
 *
 * Defaults are the SimSiam CIFAR model (ResNet-18, CIFAR stem, 2-layer 2048-d projector). Prints a
 * table, then one JSON line with every number.
 */
import os from 'node:os';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { augmentBatch } from '../src/data/augment.js';
import { makeSynthetic } from '../src/data/synthetic.js';
import { initEngine, TF32_MODES, WINOGRAD_MODES, type EngineName, type Tf32Mode, type WinogradMode } from '../src/engine/engine.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../src/engine/kernel_stats.js';
import { tf } from '../src/engine/tf.js';
import { buildSslModel } from '../src/model/build.js';
import { LossScaler } from '../src/optim/loss_scale.js';
import { Sgd } from '../src/optim/sgd.js';
import { trainStep } from '../src/train/step.js';

interface Options {
  engine: EngineName;
  arch: Config['model']['arch'];
  /** Default: the CIFAR stem up to 64 px for BatchNorm ResNets; BiT's own root for bit-* archs. */
  stem?: Config['model']['stem'];
  norm: Config['model']['norm'];
  precision: Config['engine']['precision'];
  /** simsiam (two views) or simtriplet (anchor, neighbour, second view). */
  method: 'simsiam' | 'simtriplet';
  width: number;
  size: number;
  batch: number;
  projDim: number;
  steps: number;
  warmup: number;
  profile: number;
  tf32: Tf32Mode;
  winograd: WinogradMode;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { engine: 'auto', arch: 'resnet18', norm: 'group', precision: 'fp32', method: 'simsiam', width: 64, size: 32, batch: 64, projDim: 2048, steps: 5, warmup: 1, profile: 0, tf32: 'convs', winograd: 'inference' };
  const numeric: Record<string, keyof Options> = {
    '--width': 'width',
    '--size': 'size',
    '--batch': 'batch',
    '--proj-dim': 'projDim',
    '--steps': 'steps',
    '--warmup': 'warmup',
    '--profile': 'profile',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--engine') opts.engine = value as EngineName;
    else if (flag === '--arch') opts.arch = value as Options['arch'];
    else if (flag === '--stem') opts.stem = value as Options['stem'];
    else if (flag === '--norm') opts.norm = value as Options['norm'];
    else if (flag === '--precision') opts.precision = value as Options['precision'];
    else if (flag === '--method' && (value === 'simsiam' || value === 'simtriplet')) opts.method = value;
    else if (flag === '--tf32' && (TF32_MODES as readonly string[]).includes(value)) opts.tf32 = value as Tf32Mode;
    else if (flag === '--winograd' && (WINOGRAD_MODES as readonly string[]).includes(value)) opts.winograd = value as WinogradMode;
    else if (numeric[flag]) (opts as unknown as Record<string, number>)[numeric[flag]] = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  return opts;
}

const ms = (t0: number) => performance.now() - t0;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const engine = await initEngine(o.engine, { training: true, tf32: o.tf32, winograd: o.winograd });
  const cfg: Config = ConfigSchema.parse({
    data: { image_size: o.size },
    engine: { precision: o.precision },
    model: { arch: o.arch, stem: o.stem ?? (o.size <= 64 && !o.arch.startsWith('bit-') ? 'cifar' : 'imagenet'), norm: o.norm, width: o.width },
    method: { name: o.method, proj_layers: 2, proj_dim: o.projDim, pred_hidden: Math.max(o.projDim / 4, 1) },
  });
  const ds = makeSynthetic({ size: o.size, count: o.batch, seed: 0, split: 'train' });
  const model = buildSslModel(cfg.model, cfg.method, 0, { precision: o.precision });
  // mixed16 steps carry the loss scaler the trainer would use (scaling, finite check, unscaling).
  const stepInputs = o.precision === 'mixed16' ? { scaler: new LossScaler({ initScale: cfg.engine.loss_scale_init }) } : {};
  const opt = new Sgd(model.store.trainable(), { momentum: 0.9, weightDecay: 5e-4, decayNormAndBias: true });
  const vars = model.store.trainable().map((p) => p.variable);
  const idx = Int32Array.from({ length: o.batch }, (_, i) => i);
  // One augmented view per view source (SimTriplet's neighbour view augments the same images here:
  // the work per view is the same).
  const viewCount = model.method.viewSources.length;
  const lr = () => 0.01;
  const split = { data: [] as number[], forward: [] as number[], forwardBackward: [] as number[], optimizer: [] as number[], step: [] as number[] };
  const gpu = () => tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; peakBytesInGPU?: number };
  // Counted from the first measured step: the warm-up creates the momentum buffers.
  let tensorsBefore = tf.memory().numTensors;
  let gpuBytesBefore = gpu().numBytesInGPU ?? 0;
  for (let i = 0; i < o.warmup + o.steps; i++) {
    const measured = i >= o.warmup;
    if (i === o.warmup) {
      tensorsBefore = tf.memory().numTensors;
      gpuBytesBefore = gpu().numBytesInGPU ?? 0;
    }
    let t0 = performance.now();
    const views = augmentBatch(ds, idx, o.size, cfg.data.augment, model.normalization, { seed: 0, epoch: i }, viewCount);
    const tData = ms(t0);
    // Forward alone (no tape), then forward + backward, then the update on those gradients.
    t0 = performance.now();
    tf.tidy(() => {
      const xs = views.map((v) => tf.tensor4d(v, [o.batch, o.size, o.size, 3]));
      model.method.step(xs).loss.dataSync();
    });
    const tForward = ms(t0);
    t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => model.method.step(views.map((v) => tf.tensor4d(v, [o.batch, o.size, o.size, 3]))).loss, vars);
    value.dataSync();
    const tFb = ms(t0);
    t0 = performance.now();
    opt.step(grads, lr);
    tf.dispose([value, ...Object.values(grads)]);
    // The update is queued on a GPU engine: reading one weight waits for it.
    model.store.trainable()[0]!.variable.dataSync();
    const tOpt = ms(t0);
    // The real step as the trainer runs it, on views augmented beforehand: img/s of the step alone.
    const v2 = augmentBatch(ds, idx, o.size, cfg.data.augment, model.normalization, { seed: 1, epoch: i }, viewCount);
    t0 = performance.now();
    trainStep(model.method, model.store, opt, v2, o.size, lr, stepInputs);
    const tStep = ms(t0);
    if (measured) {
      split.data.push(tData);
      split.forward.push(tForward);
      split.forwardBackward.push(tFb);
      split.optimizer.push(tOpt);
      split.step.push(tStep);
    }
    process.stderr.write(`step ${i + 1}/${o.warmup + o.steps}${measured ? '' : ' (warm-up)'}: ${tStep.toFixed(0)} ms step, ${tData.toFixed(0)} ms augmentation\n`);
  }
  const step = mean(split.step);
  const data = mean(split.data);
  const memory = gpu();
  const onGpu = memory.peakBytesInGPU !== undefined;
  const result = {
    engine: engine.engine,
    engine_detail: engine.detail,
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}`,
    model: `${o.method === 'simtriplet' ? 'SimTriplet ' : ''}${o.arch}${o.arch.startsWith('bit-') ? ` (${o.norm} norm)` : ` width ${o.width}`}, ${cfg.model.stem} stem, ${o.size}px, proj ${o.projDim}${o.precision === 'mixed16' ? ', mixed16' : ''}`,
    batch: o.batch,
    /** The training step alone (views augmented beforehand). */
    img_per_s: o.batch / (step / 1000),
    step_ms: step,
    /** Augmenting the batch's two views on the main thread (data.workers 0), then the step. */
    img_per_s_with_augmentation: o.batch / ((step + data) / 1000),
    data_ms: data,
    forward_ms: mean(split.forward),
    backward_ms: mean(split.forwardBackward) - mean(split.forward),
    optimizer_ms: mean(split.optimizer),
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    tensor_leak: tf.memory().numTensors - tensorsBefore,
    ...(engine.engine === 'onednn' ? { winograd: o.winograd } : {}),
    ...(onGpu
      ? {
          tf32: o.tf32,
          /** Most bytes held by live tensors and scratch at once (PyTorch's max_memory_allocated). */
          gpu_peak_mib: memory.peakBytesInGPU! / 2 ** 20,
          gpu_leak_bytes: (memory.numBytesInGPU ?? 0) - gpuBytesBefore,
        }
      : {}),
  };
  const profile = o.profile ? await profileStep(() => {
    const v = augmentBatch(ds, idx, o.size, cfg.data.augment, model.normalization, { seed: 2, epoch: 0 }, viewCount);
    trainStep(model.method, model.store, opt, v, o.size, lr, stepInputs);
  }, engine.engine === 'onednn' || engine.engine === 'cuda') : undefined;
  const row = (k: string, v: string) => process.stdout.write(`${k.padEnd(14)} ${v}\n`);
  row('engine', `${result.engine} (${result.engine_detail})`);
  row('machine', result.machine);
  row('model', `${result.model}, batch ${o.batch}`);
  row('throughput', `${result.img_per_s.toFixed(2)} img/s step only (${step.toFixed(1)} ms/step); ${result.img_per_s_with_augmentation.toFixed(2)} img/s with augmentation on the main thread`);
  row('split', `data ${data.toFixed(1)} ms, forward ${result.forward_ms.toFixed(1)} ms, backward ${result.backward_ms.toFixed(1)} ms, optimizer ${result.optimizer_ms.toFixed(1)} ms`);
  row('peak RSS', `${result.peak_rss_mib.toFixed(0)} MiB`);
  if (result.gpu_peak_mib !== undefined) row('GPU memory', `peak ${result.gpu_peak_mib.toFixed(0)} MiB; ${result.gpu_leak_bytes} bytes more after ${o.steps} steps; ${result.tensor_leak} tensors more`);
  if (profile) {
    row('profile', `kernels ${profile.kernel_ms.toFixed(0)} ms of a ${profile.step_ms.toFixed(0)} ms step; JavaScript kernels ${(100 * profile.js_share).toFixed(1)} % of kernel time`);
    for (const k of profile.top) row('', `${k.name.padEnd(24)} ${k.ms.toFixed(1).padStart(8)} ms  x${k.count}${k.native < 1 ? `  (${(100 * (1 - k.native)).toFixed(0)} % JavaScript)` : ''}`);
    row('fallbacks', profile.fallbacks.length ? profile.fallbacks.map((f) => `${f.name} x${f.count}`).join(', ') : 'none: every kernel of the step ran natively');
  }
  process.stdout.write(`${JSON.stringify({ ...result, profile })}\n`);
}

interface KernelTime {
  name: string;
  ms: number;
  count: number;
  /** Fraction of the calls that ran natively. */
  native: number;
}

/**
 * Kernel times of one step from tf.profile. On a native engine a kernel counts as native in the
 * proportion of its calls that took the native path, and every host fallback is listed.
 */
async function profileStep(step: () => void, nativeEngine: boolean) {
  resetKernelStats();
  const t0 = performance.now();
  const info = await tf.profile(step);
  const stepMs = performance.now() - t0;
  const byName = new Map<string, { ms: number; count: number }>();
  for (const k of info.kernels) {
    const e = byName.get(k.name) ?? { ms: 0, count: 0 };
    e.ms += Number(k.kernelTimeMs) || 0;
    e.count++;
    byName.set(k.name, e);
  }
  const kernels: KernelTime[] = [...byName].map(([name, e]) => {
    const nat = nativeRuns.get(name) ?? 0;
    const fell = fallbackRuns.get(name) ?? 0;
    const native = !nativeEngine ? 0 : nat + fell > 0 ? nat / (nat + fell) : 1;
    return { name, ...e, native };
  });
  const kernelMs = kernels.reduce((a, k) => a + k.ms, 0);
  const jsMs = kernels.reduce((a, k) => a + k.ms * (1 - k.native), 0);
  kernels.sort((a, b) => b.ms - a.ms);
  const fallbacks = [...fallbackRuns].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count);
  return { step_ms: stepMs, kernel_ms: kernelMs, js_ms: jsMs, js_share: jsMs / Math.max(kernelMs, 1e-9), top: kernels.slice(0, 10), fallbacks };
}

await main();
