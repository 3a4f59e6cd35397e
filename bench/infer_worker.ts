/**
 * One bench:infer measurement in a process of its own (so its peak RSS is its own): one model, one
 * runtime, `--iters` timed batches after `--warmup`. Prints one JSON line. Modes:
 *
 *   --runtime tfjs|onednn-plan|onnxruntime   ours, through the same factories eval uses (no check)
 *   --runtime ort-file --onnx F              onnxruntime-node on another ONNX file (NCHW input), e.g. torch's
 *   --export-state-dict F                    writes the model's weights for PyTorch (torchvision layout)
 *   --folder DIR                             eval/embed end to end on DIR's JPEGs vs the in-memory rate
 */
import { availableParallelism } from 'node:os';
import { initEngine, machineSummary } from '../src/engine/engine.js';
import { createOnednnPlanExtractor, onednnPlanAvailable } from '../src/engine/onednn/inference_plan.js';
import { createOnnxruntimeExtractor, requireOrt, tunedSession } from '../src/engine/onnxruntime/extractor.js';
import { tf } from '../src/engine/tf.js';
import type { FeatureExtractor } from '../src/eval/extractor.js';
import { createTrainingGraphExtractor } from '../src/eval/training_graph_extractor.js';
import { exportStateDict } from '../src/export/state_dict_export.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { buildEncoder, type EncoderModel } from '../src/model/build.js';
import { Rng } from '../src/util/rng.js';
import { inferModel } from './infer_models.js';
import { folderBench } from './infer_folder.js';

function flags(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) m.set(argv[i]!, argv[i + 1] ?? '');
  return m;
}

async function extractorFor(runtime: string, model: EncoderModel, side: number, batch: number, onnx?: string): Promise<FeatureExtractor> {
  switch (runtime) {
    case 'tfjs':
      return createTrainingGraphExtractor(model.backbone, side);
    case 'onednn-plan':
      return createOnednnPlanExtractor(model, side, { batchSize: batch });
    case 'onnxruntime':
      return createOnnxruntimeExtractor(model, side);
    case 'ort-file': {
      if (!onnx) throw new Error('--runtime ort-file needs --onnx');
      const ort = await requireOrt();
      const threads = availableParallelism();
      const session = await tunedSession(onnx, threads);
      const [input] = session.inputNames;
      const [output] = session.outputNames;
      return {
        runtime: 'onnxruntime',
        description: `onnxruntime ${ort.env.versions.common} on ${onnx} (NCHW, ${threads} threads)`,
        featureDim: model.backbone.featureDim,
        imageSize: side,
        run: async (x, n) => (await session.run({ [input!]: new ort.Tensor('float32', x, [n, 3, side, side]) }))[output!]!.data as Float32Array,
        dispose: () => void session.release(),
      };
    }
    default:
      throw new Error(`--runtime: got '${runtime}'`);
  }
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2));
  const engine = await initEngine((f.get('--engine') ?? 'auto') as 'auto');
  const spec = inferModel(f.get('--model') ?? 'r18');
  const model = buildEncoder(spec.config, 0);
  const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  if (f.has('--export-state-dict')) {
    const file = f.get('--export-state-dict')!;
    const { tensors } = await exportStateDict(model, spec.config, 'torchvision', file);
    await writeSafetensors(file, tensors);
    out({ wrote: file });
    return;
  }
  if (f.has('--folder')) {
    out(await folderBench(f.get('--folder')!, model, spec, Number(f.get('--batch') ?? spec.batch), f.get('--runtime') ?? 'auto'));
    return;
  }
  const runtime = f.get('--runtime') ?? 'tfjs';
  if (runtime === 'onednn-plan' && !onednnPlanAvailable()) {
    out({ unavailable: 'the oneDNN addon here builds no inference plans' });
    return;
  }
  const batch = Number(f.get('--batch') ?? spec.batch);
  const iters = Number(f.get('--iters') ?? 5);
  const warmup = Number(f.get('--warmup') ?? 1);
  const side = spec.imageSize;
  // Setup: what a caller pays before the first batch (graph built, session or plan compiled, weights copied).
  const setupStart = performance.now();
  const extractor = await extractorFor(runtime, model, side, batch, f.get('--onnx'));
  const setupMs = performance.now() - setupStart;
  const rng = new Rng('bench-infer');
  const images = Float32Array.from({ length: batch * side * side * 3 }, () => rng.normal());
  const input = runtime === 'ort-file' ? tf.tidy(() => tf.transpose(tf.tensor4d(images, [batch, side, side, 3]), [0, 3, 1, 2]).dataSync() as Float32Array) : images;
  for (let i = 0; i < warmup; i++) await extractor.run(input, batch);
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await extractor.run(input, batch);
  const seconds = (performance.now() - t0) / 1000;
  out({
    runtime,
    description: extractor.description,
    engine: engine.engine,
    machine: machineSummary(),
    model: spec.label,
    batch,
    iters,
    img_per_s: (batch * iters) / seconds,
    setup_ms: setupMs,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
  });
  extractor.dispose();
}

await main();
