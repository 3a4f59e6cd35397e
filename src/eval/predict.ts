/**
 * `simtrip predict`: classifies a folder of images with a probe eval kept (saved_probe.ts). The
 * encoder comes from --checkpoint (a run, a checkpoint, or a weight file holding the same weights);
 * the probe must have been fitted on exactly those weights. Images go through what eval's features
 * went through (embed's loading: file-name order, shorter side resized to the probe's image size,
 * centre crop, the encoder's input scaling; float16 rounding when eval used the feature cache), so a
 * folder of test-split images gets the predictions eval scored.
 *
 * The CSV has one row per image: file, predicted class, and the probability of every class (one
 * probe's softmax, or the fold probes' mean for a leave-one-group-out ensemble).
 */
import { basename } from 'node:path';
import { csvField } from '../data/csv.js';
import { openEncoderSource } from '../export/encoder_source.js';
import { writeFileAtomic } from '../io/atomic.js';
import { roundToFloat16InPlace } from '../io/float16.js';
import { IMAGE_EXTENSIONS, listImages } from '../io/image.js';
import { createProgress } from '../report/progress.js';
import { checkpointHome } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';
import { encodeFiles } from './embed.js';
import type { InferenceRuntime } from './extractor.js';
import { fittedPredictions, fittedProbabilities } from './fitted_probe.js';
import { describeProbe, probeForEncoder, type SavedProbe } from './saved_probe.js';

export interface PredictOptions {
  /** A simtrip run or checkpoint, or a weight file (the probe's encoder must match it). */
  checkpoint: string;
  /** A record id or the start of one; absent: the one probe fitted on this encoder. */
  probe?: string;
  imagesDir: string;
  out: string;
  /** Where the probes are (its evals/); default: the checkpoint's run directory. */
  runDir?: string;
  batchSize: number;
  /** The inference runtime (--inference; see src/eval/inference.ts); auto when absent. */
  inference?: InferenceRuntime;
  log: (line: string) => void;
  progressStream?: NodeJS.WriteStream;
}

export interface PredictResult {
  out: string;
  probe: SavedProbe;
  count: number;
  /** Images predicted per class, in class order. */
  counts: Record<string, number>;
}

/** Probabilities with 7 significant digits: float32 features carry no more. */
function probabilityText(p: number): string {
  return String(Number(p.toPrecision(7)));
}

/** The CSV: a header (file, predicted, p_<class>...) and one row per image. */
export function predictionsCsv(files: readonly string[], classNames: readonly string[], predicted: Int32Array, probabilities: Float64Array): string {
  const k = classNames.length;
  const lines = [['file', 'predicted', ...classNames.map((c) => `p_${c}`)].map(csvField).join(',')];
  files.forEach((file, i) => {
    const probs = Array.from(probabilities.subarray(i * k, (i + 1) * k), probabilityText);
    lines.push([csvField(file), csvField(classNames[predicted[i]!]!), ...probs].join(','));
  });
  return `${lines.join('\n')}\n`;
}

export async function predict(opts: PredictOptions): Promise<PredictResult> {
  if (!opts.out.toLowerCase().endsWith('.csv')) throw new UserError(`--out: got '${opts.out}', expected a file name ending in .csv`);
  const files = await listImages(opts.imagesDir);
  if (files.length === 0) throw new UserError(`--images: no image files (${IMAGE_EXTENSIONS.join(' ')}) in ${opts.imagesDir}`);
  const src = await openEncoderSource(opts.checkpoint);
  try {
    const home = opts.runDir ?? checkpointHome(src.path);
    const probe = await probeForEncoder(home, opts.probe, src.model, src.description, '--probe');
    const { info } = probe;
    const side = info.preprocessing.image_size;
    opts.log(`encoder  ${src.description} (inputs scaled for '${src.model.normalization}')`);
    opts.log(`probe    ${info.record_id}: ${describeProbe(info)}, classes ${info.class_names.join(', ')}; images ${side}x${side}${info.features.dtype === 'float16' ? ', features rounded to float16 as eval cached them' : ''}`);
    const bar = createProgress({ label: 'predict', total: files.length, unit: 'img', stream: opts.progressStream });
    const inference = { runtime: opts.inference ?? 'auto', imageSize: side, batchSize: opts.batchSize, log: opts.log, key: '--inference', batchKey: '--batch-size' } as const;
    const features = await encodeFiles(src.model, files, inference, 'encoded ', bar);
    if (info.features.dtype === 'float16') roundToFloat16InPlace(features);
    const k = info.class_names.length;
    const probabilities = fittedProbabilities(probe.fitted, features, k);
    const predicted = fittedPredictions(probe.fitted, features, k);
    await writeFileAtomic(opts.out, predictionsCsv(files.map((f) => basename(f)), info.class_names, predicted, probabilities));
    const counts = Object.fromEntries(info.class_names.map((c) => [c, 0]));
    for (const c of predicted) counts[info.class_names[c]!]!++;
    return { out: opts.out, probe, count: files.length, counts };
  } finally {
    src.model.store.dispose();
  }
}
