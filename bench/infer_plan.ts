/**
 * Feature-extraction throughput (img/s) of the onednn inference plan against the training graph on
 * the onednn tfjs backend (backbone.features(x, false), what eval ran before the plan) and against
 * onnxruntime-node (graph optimisation 'all', the same thread count), on random weights:
 *   ResNet-18, CIFAR stem, width 64, 32 px, batch 128
 *   ResNet-50, ImageNet stem, 224 px, batch 32
 *   BiT-R50x1, 128 px, batch 32 (with --bit)
 * The three runtimes take turns within each round, so a loaded machine slows all of them alike; the
 * table gives the median round and the plan's ratio to each.
 *
 *   node dist/bench/infer_plan.js [--rounds 5] [--micro-batch N] [--bit] [--only resnet18|resnet50|bit] [--primitives]
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { ModelSchema } from '../src/config/schema.js';
import { tf } from '../src/engine/tf.js';
import { loadOnednn } from '../src/engine/onednn/loader.js';
import { createOnednnPlanExtractor } from '../src/engine/onednn/inference_plan.js';
import { encoderOnnx, ONNX_FEATURES, ONNX_INPUT } from '../src/export/onnx_encoder.js';
import { relativeError } from '../src/check/compare.js';
import { buildEncoder, type EncoderModel } from '../src/model/build.js';

interface Case {
  name: string;
  model: Record<string, unknown>;
  side: number;
  batch: number;
}

const CASES: Case[] = [
  { name: 'resnet18', model: { arch: 'resnet18', stem: 'cifar', width: 64 }, side: 32, batch: 128 },
  { name: 'resnet50', model: { arch: 'resnet50', stem: 'imagenet', width: 64 }, side: 224, batch: 32 },
  { name: 'bit', model: { arch: 'bit-r50x1', stem: 'imagenet' }, side: 128, batch: 32 },
];

interface Options {
  rounds: number;
  microBatch?: number;
  bit: boolean;
  only?: string;
  /** Print the plan's primitives and the implementations oneDNN picked. */
  primitives: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { rounds: 5, bit: false, primitives: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--bit') opts.bit = true;
    else if (flag === '--primitives') opts.primitives = true;
    else if (flag === '--only') opts.only = argv[++i];
    else if (flag === '--rounds' || flag === '--micro-batch') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) throw new Error(`${flag} needs a positive integer, got ${argv[i]}`);
      if (flag === '--rounds') opts.rounds = v;
      else opts.microBatch = v;
    } else throw new Error(`unknown flag ${flag}`);
  }
  return opts;
}

type Runner = { label: string; run: () => Promise<Float32Array>; close: () => Promise<void> };

async function runners(enc: EncoderModel, c: Case, images: Float32Array, opts: Options): Promise<Runner[]> {
  const plan = createOnednnPlanExtractor(enc, c.side, { batchSize: opts.microBatch });
  console.log(`  plan: ${plan.description}`);
  if (opts.primitives) console.log(plan.primitives().replace(/^/gm, '    '));
  const threads = Math.max(1, Number(process.env.OMP_NUM_THREADS) || os.availableParallelism());
  const session = await ort.InferenceSession.create(encoderOnnx(enc, { imageSize: c.side, normalization: enc.normalization }), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const nchw = tf.tidy(() => tf.transpose(tf.tensor4d(images, [c.batch, c.side, c.side, 3]), [0, 3, 1, 2]).dataSync() as Float32Array);
  return [
    {
      label: 'training graph',
      run: async () => tf.tidy(() => enc.backbone.features(tf.tensor4d(images, [c.batch, c.side, c.side, 3]), false).dataSync() as Float32Array),
      close: async () => {},
    },
    { label: 'plan', run: () => plan.run(images, c.batch), close: async () => plan.dispose() },
    {
      label: `onnxruntime (${threads} threads)`,
      // The NHWC -> NCHW transpose is the caller's work for ORT, so it is outside the timing.
      run: async () => (await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', nchw, [c.batch, 3, c.side, c.side]) }))[ONNX_FEATURES]!.data as Float32Array,
      close: () => session.release(),
    },
  ];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function bench(c: Case, opts: Options): Promise<Record<string, number>> {
  console.log(`${c.name}: ${JSON.stringify(c.model)}, ${c.side} px, batch ${c.batch}`);
  const enc = buildEncoder(ModelSchema.parse(c.model), 1);
  const images = tf.tidy(() => tf.randomNormal([c.batch, c.side, c.side, 3], 0, 1, 'float32', 5).dataSync() as Float32Array);
  const rs = await runners(enc, c, images, opts);
  // Warm-up: builds primitives and sessions, and checks that all three agree.
  const outs = [];
  for (const r of rs) outs.push(await r.run());
  console.log(`  relative error vs training graph: plan ${relativeError(outs[1]!, outs[0]!).toExponential(2)}, onnxruntime ${relativeError(outs[2]!, outs[0]!).toExponential(2)}`);
  const rates = rs.map(() => [] as number[]);
  for (let round = 0; round < opts.rounds; round++) {
    for (const [k, r] of rs.entries()) {
      const t0 = performance.now();
      await r.run();
      rates[k]!.push(c.batch / ((performance.now() - t0) / 1000));
    }
  }
  const result: Record<string, number> = {};
  rs.forEach((r, k) => {
    result[r.label] = median(rates[k]!);
  });
  const planRate = result.plan!;
  for (const [label, rate] of Object.entries(result)) {
    console.log(`  ${label.padEnd(26)} ${rate.toFixed(1).padStart(8)} img/s${label === 'plan' ? '' : `   plan / this = ${(planRate / rate).toFixed(2)}x`}`);
  }
  for (const r of rs) await r.close();
  enc.store.dispose();
  return result;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const load = await loadOnednn();
  if (!load.ok) throw new Error(`the onednn engine is needed: ${load.reason} (${load.hint})`);
  await tf.setBackend('onednn');
  console.log(`onednn: ${load.detail}; ${os.cpus()[0]?.model ?? 'unknown cpu'}`);
  const cases = CASES.filter((c) => (opts.only ? c.name === opts.only : c.name !== 'bit' || opts.bit));
  const all: Record<string, Record<string, number>> = {};
  for (const c of cases) all[c.name] = await bench(c, opts);
  console.log(JSON.stringify(all));
}

await main();
