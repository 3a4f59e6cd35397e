/**
 * `npm run check:cuda`: the CUDA engine against a reference engine, in one bundled script that needs
 * neither vitest nor node_modules (dist/check/cuda.js), so it runs as is on a GPU machine.
 *
 *   node dist/check/cuda.js [--engine cuda|host] [--reference onednn|cpu] [--scale full|small]
 *                           [--only kernels,steps,golden,tf32] [--fixtures DIR] [--out FILE]
 *                           [--budget SECONDS]
 *
 * 1. kernels: every native kernel against the reference on random inputs with the models' shapes,
 *    forward and gradient, TF32 off; and which native kernels no case reached.
 * 2. steps: a full SimSiam step on ResNet-18 (CIFAR) and ResNet-50 (ImageNet stem): loss, every
 *    gradient, weights, running statistics and momentum after SGD, TF32 off; and every host fallback
 *    the step took (there must be none).
 * 3. mixed16: engine.precision mixed16 against the reference's emulation: one step's loss, gradients
 *    and state, the losses of a short run, and the loss scaler's skip pattern when the gradients
 *    overflow (src/check/mixed16_parity.ts explains the tolerances).
 * 4. probe: a linear probe fitted on the engine against the cpu backend's, on the same features:
 *    the same test accuracy within 1 % (5 of 500 boundary items).
 * 5. golden: the golden fixtures of the original PyTorch models, and every backbone gradient from
 *    their real weights against the reference engine.
 * 6. tf32: the same steps with TF32 allowed for convolutions (the default) and for everything, to
 *    measure the error it gives (reported, not gated).
 * The table is printed last; the exit code is 1 when a gated check fails. `--engine host` runs the
 * emulated build (CI); `--scale small` shrinks every shape for it.
 *
 * On a GPU machine every minute counts, so the check never stops at a failure: an error (a device
 * fault included) becomes that check's FAIL row and the next check runs; parts start only while
 * `--budget SECONDS` allows; progress goes to stderr as each part starts and each check finishes; and
 * `--out FILE` is rewritten after every part, so a run cut short still leaves its rows. Each row's
 * JSON carries what a fix needs without another run: the kernel, its input shapes and dtypes, the
 * relative and largest absolute error against the tolerance, the whole error message with the cuDNN
 * status, and every convolution the check ran with the algorithm and math type cuDNN's search chose
 * for it. cuDNN's searches persist across the device script's processes with SIMTRIP_CUDA_CONV_PLANS.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../engine/tf.js';
import { loadCuda } from '../engine/cuda/loader.js';
import type { CudaBackend } from '../engine/cuda/backend.js';
import { CUDA_KERNELS } from '../engine/cuda/kernels/index.js';
import { fallbackRuns, nativeRuns, resetKernelStats } from '../engine/kernel_stats.js';
import { loadOnednn } from '../engine/onednn/loader.js';
import { packageRoot } from '../engine/package_root.js';
import { relativeError } from './compare.js';
import { CheckRun, cudnnStatusOf, PARTS, type CheckDetail, type CheckRow, type ConvUse, type Part } from './check_run.js';

export type { CheckDetail, CheckRow, ConvUse } from './check_run.js';
import { GOLDEN_FIXTURES, goldenGradients, goldenParity } from './golden.js';
import type { Scale } from './kernel_cases.js';
import { runKernelCases } from './run_cases.js';
import { compareRuns, trainingRun } from './mixed16_parity.js';
import { compareProbes } from './probe_parity.js';
import { compareSteps, stepOn, type StepSpec } from './step_parity.js';
import '@tensorflow/tfjs-backend-cpu';


export interface Options {
  engine: 'cuda' | 'host';
  reference: 'onednn' | 'cpu';
  scale?: Scale;
  only: Part[];
  fixtures: string;
  out?: string;
  /** Seconds after which no further part starts. */
  budget?: number;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { engine: 'cuda', reference: 'onednn', only: [...PARTS], fixtures: path.join(packageRoot(), 'test', 'fixtures') };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i]!, argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === '--engine' && (value === 'cuda' || value === 'host')) o.engine = value;
    else if (flag === '--reference' && (value === 'onednn' || value === 'cpu')) o.reference = value;
    else if (flag === '--scale' && (value === 'full' || value === 'small')) o.scale = value;
    else if (flag === '--only') o.only = value.split(',').filter((p): p is Part => (PARTS as readonly string[]).includes(p));
    else if (flag === '--fixtures') o.fixtures = value;
    else if (flag === '--out') o.out = value;
    else if (flag === '--budget' && Number(value) > 0) o.budget = Number(value);
    else throw new Error(`unknown flag or value: ${flag} ${value}`);
  }
  return o;
}

/**
 * The steps compared: SimSiam on the BatchNorm ResNets first (the mixed16 part uses the first), then
 * BiT in both norm variants, SimTriplet's three views and the supervised arm.
 */
export function stepSpecs(scale: Scale): StepSpec[] {
  const proj: StepSpec['method'] = scale === 'full' ? { proj_layers: 2, proj_dim: 2048, pred_hidden: 512 } : { proj_layers: 2, proj_dim: 32, pred_hidden: 8 };
  const more: StepSpec[] =
    scale === 'full'
      ? [
          { label: 'BiT-R50x1 GroupNorm, 64 px, batch 8', model: { arch: 'bit-r50x1', norm: 'group' }, method: proj, batch: 8, side: 64, gate: 'whole' },
          { label: 'BiT-R50x1 BatchNorm, 64 px, batch 8', model: { arch: 'bit-r50x1', norm: 'batch' }, method: proj, batch: 8, side: 64 },
          { label: 'SimTriplet ResNet-50, 64 px, batch 8', model: { arch: 'resnet50', stem: 'imagenet', width: 64 }, method: { ...proj, name: 'simtriplet' }, batch: 8, side: 64 },
          { label: 'supervised ResNet-18 CIFAR, 32 px, batch 32', model: { arch: 'resnet18', stem: 'cifar', width: 64 }, method: { name: 'supervised' }, batch: 32, side: 32, classes: 10 },
        ]
      : [
          { label: 'BiT-R50x1 GroupNorm width 8, 64 px, batch 4', model: { arch: 'bit-r50x1', norm: 'group', width: 8 }, method: proj, batch: 4, side: 64, gate: 'whole' },
          { label: 'BiT-R50x1 BatchNorm width 8, 64 px, batch 4', model: { arch: 'bit-r50x1', norm: 'batch', width: 8 }, method: proj, batch: 4, side: 64 },
          { label: 'SimTriplet ResNet-18 width 8, 16 px, batch 6', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { ...proj, name: 'simtriplet' }, batch: 6, side: 16 },
          { label: 'supervised ResNet-18 width 8, 16 px, batch 8', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { name: 'supervised' }, batch: 8, side: 16, classes: 4 },
        ];
  return [...baseStepSpecs(scale), ...more];
}

function baseStepSpecs(scale: Scale): StepSpec[] {
  return scale === 'full'
    ? [
        { label: 'ResNet-18 CIFAR, 32 px, batch 32', model: { arch: 'resnet18', stem: 'cifar', width: 64 }, method: { proj_layers: 2, proj_dim: 2048, pred_hidden: 512 }, batch: 32, side: 32 },
        { label: 'ResNet-50, 64 px, batch 8', model: { arch: 'resnet50', stem: 'imagenet', width: 64 }, method: { proj_layers: 3, proj_dim: 2048, pred_hidden: 512 }, batch: 8, side: 64 },
      ]
    : [
        { label: 'ResNet-18 CIFAR width 8, 16 px, batch 6', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 }, batch: 6, side: 16 },
        // Batch 4 at 64 px keeps 16 rows in the last stage's batch norms: with fewer, their statistics are
        // so ill-conditioned that float32 rounding alone moves gradients past 1e-4 between any two engines.
        { label: 'ResNet-50 width 8, 64 px, batch 4', model: { arch: 'resnet50', stem: 'imagenet', width: 8 }, method: { proj_layers: 3, proj_dim: 32, pred_hidden: 8 }, batch: 4, side: 64 },
      ];
}

/**
 * mixed16 limits. A half-ulp is 2^-11 (4.9e-4) relative; a value whose float32 sums differ between
 * engines by a rounding error can round to neighbouring halves, and through a step such flips reach
 * the gradients as relative errors of a few 1e-3 at most.
 */
const MIXED16 = {
  loss: 1e-3,
  gradient: 1e-2,
  run: {
    full: { steps: 50, spec: { label: 'ResNet-18 CIFAR width 32, 32 px, batch 32, mixed16', model: { arch: 'resnet18', stem: 'cifar', width: 32 }, method: { proj_layers: 2, proj_dim: 512, pred_hidden: 128 }, batch: 32, side: 32 } },
    small: { steps: 20, spec: { label: 'ResNet-18 CIFAR width 8, 16 px, batch 6, mixed16', model: { arch: 'resnet18', stem: 'cifar', width: 8 }, method: { proj_layers: 2, proj_dim: 32, pred_hidden: 8 }, batch: 6, side: 16 } },
  },
} satisfies { loss: number; gradient: number; run: Record<Scale, { steps: number; spec: StepSpec }> };

const exp = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

/** Every native kernel against the reference, forward and gradient, and which kernels no case reached. */
async function kernelsPart(run: CheckRun): Promise<void> {
  resetKernelStats();
  run.convolutionsSince();
  await run.guard('kernels', 'kernel cases', async () => {
    await runKernelCases(run.target, run.reference, run.scale, (r) => {
      const detail: CheckDetail = {
        kernel: r.name,
        shapes: r.shapes,
        dtypes: r.dtypes,
        relativeError: r.error,
        maxError: r.maxError,
        tolerance: r.tolerance,
        ...(r.problem ? { error: r.problem, cudnnStatus: cudnnStatusOf(r.problem) } : {}),
      };
      const convolutions = run.convolutionsSince();
      if (convolutions.length) detail.convolutions = convolutions;
      run.add({ part: 'kernels', name: r.name, value: r.problem ?? exp(r.error), limit: exp(r.tolerance), ok: r.ok, detail });
    });
  });
  const unreached = Object.keys(CUDA_KERNELS).filter((k) => !nativeRuns.get(k));
  run.add({ part: 'kernels', name: 'native kernels no case reached', value: unreached.length ? unreached.join(', ') : 'none', limit: 'none', ok: unreached.length === 0 });
}

const fallbacksText = () => {
  const list = [...fallbackRuns].map(([k, n]) => `${k} x${n}`);
  return { value: list.length ? list.join(', ') : 'none', ok: list.length === 0 };
};

/** A full step of every preset against the reference: loss, gradients, state after SGD, host fallbacks. */
async function stepsPart(run: CheckRun): Promise<void> {
  for (const spec of stepSpecs(run.scale)) {
    await run.guard('steps', spec.label, async () => {
      run.convolutionsSince();
      const ref = await stepOn(run.reference, spec);
      resetKernelStats();
      const got = await stepOn(run.target, spec);
      const fallbacks = fallbacksText();
      const c = compareSteps(got, ref);
      const convolutions = run.convolutionsSince();
      run.add({
        part: 'steps',
        name: `${spec.label}: loss`,
        value: `${got.loss.toFixed(6)} vs ${ref.loss.toFixed(6)}`,
        limit: '1e-4 rel',
        ok: c.lossDifference <= 1e-4 * Math.max(1, Math.abs(ref.loss)),
        // The step's convolutions with the algorithms cuDNN chose, on its first row.
        detail: { kernel: spec.label, shapes: [[spec.batch, spec.side, spec.side, 3]], relativeError: c.wholeGradient, convolutions },
      });
      const perTensor = (spec.gate ?? 'tensor') === 'tensor';
      const wholeLimit = perTensor ? 1e-4 : 1e-2;
      run.add({ part: 'steps', name: `${spec.label}: the whole gradient`, value: exp(c.wholeGradient), limit: exp(wholeLimit), ok: c.wholeGradient < wholeLimit && c.missing.length === 0 });
      run.add({ part: 'steps', name: `${spec.label}: worst gradient tensor (${c.worstGradient.name})`, value: exp(c.worstGradient.error), limit: perTensor ? '1.00e-4' : '', ok: perTensor ? c.worstGradient.error < 1e-4 : null });
      run.add({ part: 'steps', name: `${spec.label}: worst weight/statistic/momentum after SGD (${c.worstState.name})`, value: exp(c.worstState.error), limit: perTensor ? '1.00e-4' : '', ok: perTensor ? c.worstState.error < 1e-4 : null });
      run.add({ part: 'steps', name: `${spec.label}: host fallbacks in the step`, limit: 'none', ...fallbacks });
    });
  }
}

/** engine.precision mixed16 against the reference's emulation: one step, a short run, the scaler. */
async function mixed16Part(run: CheckRun): Promise<void> {
  const { target, reference, scale } = run;
  const spec = { ...stepSpecs(scale)[0]!, precision: 'mixed16' as const };
  await run.guard('mixed16', `${spec.label}: one step`, async () => {
    const ref = await stepOn(reference, spec);
    resetKernelStats();
    const got = await stepOn(target, spec);
    const fallbacks = fallbacksText();
    const c = compareSteps(got, ref);
    run.add({ part: 'mixed16', name: `${spec.label}: loss`, value: `${got.loss.toFixed(6)} vs ${ref.loss.toFixed(6)}`, limit: `${MIXED16.loss} abs`, ok: c.lossDifference <= MIXED16.loss });
    run.add({ part: 'mixed16', name: `${spec.label}: worst gradient (${c.worstGradient.name})`, value: exp(c.worstGradient.error), limit: exp(MIXED16.gradient), ok: c.worstGradient.error <= MIXED16.gradient && c.missing.length === 0 });
    run.add({ part: 'mixed16', name: `${spec.label}: host fallbacks in the step`, limit: 'none', ...fallbacks });
  });
  const r = MIXED16.run[scale];
  await run.guard('mixed16', `${r.spec.label}: ${r.steps} steps`, async () => {
    const refRun = await trainingRun(reference, r.spec, r.steps, 2 ** 16);
    const losses = compareRuns(await trainingRun(target, r.spec, r.steps, 2 ** 16), refRun);
    const drift = compareRuns(await trainingRun(reference, r.spec, r.steps, null), refRun).worstLossDifference;
    run.add({
      part: 'mixed16',
      name: `${r.spec.label}: losses over ${r.steps} steps, worst difference (fp32 vs mixed16 on ${reference}: ${exp(drift)})`,
      value: exp(losses.worstLossDifference),
      limit: `< ${exp(drift)}`,
      ok: losses.worstLossDifference < drift,
    });
    run.add({ part: 'mixed16', name: `${r.spec.label}: scaler skips and scales over ${r.steps} steps`, value: losses.scalerMismatches.length ? `differ at steps ${losses.scalerMismatches.join(', ')}` : 'identical', limit: 'identical', ok: losses.scalerMismatches.length === 0 });
  });
  await run.guard('mixed16', `${r.spec.label}: overflowing scale`, async () => {
    const overflow = compareRuns(await trainingRun(target, r.spec, 8, 2 ** 40), await trainingRun(reference, r.spec, 8, 2 ** 40));
    run.add({ part: 'mixed16', name: `${r.spec.label}: overflowing scale 2^40, skip pattern over 8 steps`, value: overflow.scalerMismatches.length ? `differs at steps ${overflow.scalerMismatches.join(', ')}` : 'identical', limit: 'identical', ok: overflow.scalerMismatches.length === 0 });
  });
}

/** A linear probe fitted on the engine against the cpu backend's, on the same features. */
async function probePart(run: CheckRun): Promise<void> {
  const p = await compareProbes(run.target, run.scale === 'full' ? 30 : 5);
  run.add({
    part: 'probe',
    name: `linear probe on ${p.testItems} test items: accuracy (weights relative error ${exp(p.weightsError)})`,
    value: `${(100 * p.accuracy).toFixed(1)} % vs ${(100 * p.referenceAccuracy).toFixed(1)} % on cpu`,
    limit: '1 % apart',
    ok: Math.abs(p.accuracy - p.referenceAccuracy) <= 0.01,
  });
}

/** The golden fixtures of the original PyTorch models, and the backbone gradients from their weights. */
async function goldenPart(run: CheckRun): Promise<void> {
  for (const f of GOLDEN_FIXTURES) {
    await run.guard('golden', f.dir, async () => {
      await tf.setBackend(run.target);
      const r = await goldenParity(run.fixtures, f);
      run.add({ part: 'golden', name: `${r.fixture} features, logits`, value: `${exp(r.featuresError)}, ${exp(r.logitsError)}`, limit: '1.00e-4', ok: r.featuresError < 1e-4 && r.logitsError < 1e-4 });
      await tf.setBackend(run.reference);
      const ref = await goldenGradients(run.fixtures, f);
      await tf.setBackend(run.target);
      const got = await goldenGradients(run.fixtures, f);
      let worst = { name: '', error: 0 };
      for (const [name, g] of ref) {
        const e = relativeError(got.get(name)!, g);
        if (e > worst.error) worst = { name, error: e };
      }
      run.add({ part: 'golden', name: `${f.dir} weights, training-mode backward: worst gradient (${worst.name})`, value: exp(worst.error), limit: '1.00e-4', ok: worst.error < 1e-4 && got.size === ref.size });
    });
  }
}

/** The error TF32 gives, for convolutions (the default) and everywhere (reported, not gated). */
async function tf32Part(run: CheckRun): Promise<void> {
  for (const [label, conv, matmul] of [['TF32 for convolutions (default)', true, false], ['TF32 everywhere', true, true]] as const) {
    for (const spec of baseStepSpecs(run.scale)) {
      await run.guard('tf32', `${label}, ${spec.label}`, async () => {
        run.backend.setTf32(conv, matmul);
        const ref = await stepOn(run.reference, spec);
        const got = await stepOn(run.target, spec);
        const c = compareSteps(got, ref);
        run.add({ part: 'tf32', name: `${label}, ${spec.label}: worst gradient, state`, value: `${exp(c.worstGradient.error)}, ${exp(c.worstState.error)}`, limit: '', ok: null });
      });
    }
  }
  run.backend.setTf32(false, false);
}

const PART_RUNS: Record<Part, (run: CheckRun) => Promise<void>> = {
  kernels: kernelsPart,
  steps: stepsPart,
  mixed16: mixed16Part,
  probe: probePart,
  golden: goldenPart,
  tf32: tf32Part,
};

/**
 * Runs the selected parts; `log` gets a line as each part starts and as each check finishes; `save`
 * gets the rows so far (and every convolution's plan) after every part. A check that throws is a FAIL
 * row and the run goes on.
 */
export async function runCudaCheck(o: Options, log: (line: string) => void = () => {}, save: (rows: CheckRow[], plans: ConvUse[]) => void = () => {}): Promise<CheckRow[]> {
  const cuda = await loadCuda({ flavour: o.engine });
  if (!cuda.ok) throw new Error(`the CUDA engine does not load: ${cuda.reason} (${cuda.hint})`);
  let reference: string = o.reference;
  if (reference === 'onednn') {
    const r = await loadOnednn();
    if (!r.ok) {
      log(`info reference onednn unavailable (${r.reason}); using cpu`);
      reference = 'cpu';
    }
  }
  const scale: Scale = o.scale ?? (o.engine === 'cuda' ? 'full' : 'small');
  log(`info target ${cuda.backendName}: ${cuda.detail}; reference ${reference}; scale ${scale}`);
  await tf.setBackend(cuda.backendName);
  const backend = tf.engine().findBackend(cuda.backendName) as CudaBackend;
  // The engine's TF32 switch (the host build has no tensor cores: there it changes nothing).
  backend.setTf32(false, false);
  const selected = PARTS.filter((p) => o.only.includes(p) && (p !== 'tf32' || o.engine === 'cuda'));
  const run = new CheckRun({ target: cuda.backendName, reference, scale, fixtures: o.fixtures, backend, budget: o.budget, parts: selected, log, save });
  for (const part of selected) {
    if (run.starting(part)) await run.guard(part, `part ${part}`, () => PART_RUNS[part](run));
  }
  run.finish();
  return run.rows;
}

export function formatTable(rows: CheckRow[]): string {
  const head = ['', 'part', 'check', 'value', 'limit'];
  const body = rows.map((r) => [r.ok === false ? 'FAIL' : r.ok ? 'ok' : '-', r.part, r.name, r.value, r.limit]);
  const widths = head.map((h, i) => Math.min(i === 2 ? 90 : 60, Math.max(h.length, ...body.map((b) => b[i]!.length))));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const failed = rows.filter((r) => r.ok === false).length;
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), '', `${rows.length - failed} of ${rows.length} checks passed or informational, ${failed} failed`].join('\n');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (!tf.env().getBool('PROD')) tf.enableProdMode();
  const save = (rows: CheckRow[], convolutions: ConvUse[]) => {
    if (o.out) writeFileSync(o.out, `${JSON.stringify({ rows, convolutions }, null, 1)}\n`);
  };
  const rows = await runCudaCheck(o, (line) => process.stderr.write(`${line}\n`), save);
  process.stdout.write(`${formatTable(rows)}\n`);
  return rows.some((r) => r.ok === false) ? 1 : 0;
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`check:cuda failed: ${(e as Error).stack ?? e}\n`);
      process.exit(2);
    },
  );
}
