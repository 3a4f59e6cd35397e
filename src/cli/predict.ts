/**
 * `simtrip predict`: registers the command; the work is in src/eval/predict.ts, loaded when it runs.
 */
import { Option, type Command } from 'commander';
import { INFERENCE_RUNTIMES, type InferenceRuntime } from '../eval/extractor.js';
import { positiveInteger } from './args.js';
import { initEngine } from '../engine/engine.js';

export function addPredictCommand(program: Command, log: (line: string) => void): void {
  program
    .command('predict')
    .description(
      'classify a folder of images with a linear probe `simtrip eval --linear-probe` kept beside its record (<run>/evals/<id>/): ' +
        'a CSV with one row per image (file, predicted class, every class probability); refuses a probe fitted on other weights than --checkpoint',
    )
    .requiredOption('--checkpoint <path>', 'the encoder: a simtrip run or checkpoint, or a weight file holding the same weights (e.g. its torchvision export)')
    .option('--probe <id>', "the probe's record id, or its start (e.g. linear-10pct; of several, the one fitted on this checkpoint); default: the one probe fitted on this checkpoint. A name that matches none or several lists them all")
    .requiredOption('--images <dir>', 'folder of images (png, jpg, tif, ...), predicted in file-name order; resized and cropped as eval did')
    .requiredOption('--out <file.csv>', 'output CSV: file, predicted, p_<class> for every class')
    .option('--run-dir <dir>', "the run directory whose evals/ hold the probe (default: the checkpoint's run directory)")
    .addOption(new Option('--inference <runtime>', "how features are computed (engine.inference's values): auto picks the fastest here, checked against the training graph").choices([...INFERENCE_RUNTIMES]).default('auto'))
    .option('--batch-size <n>', 'images encoded at once', positiveInteger, 64)
    .action(async (opts: { checkpoint: string; probe?: string; images: string; out: string; runDir?: string; batchSize: number; inference: InferenceRuntime }) => {
      // Features from any engine give the probe's inputs to float32 precision.
      const engine = await initEngine('auto');
      for (const line of engine.notices ?? []) log(line);
      const { predict } = await import('../eval/predict.js');
      const r = await predict({ checkpoint: opts.checkpoint, probe: opts.probe, imagesDir: opts.images, out: opts.out, runDir: opts.runDir, batchSize: opts.batchSize, inference: opts.inference, log });
      const counts = Object.entries(r.counts)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ');
      process.stdout.write(`predicted ${r.count} images with probe ${r.probe.info.record_id} -> ${r.out} (${counts})\n`);
    });
}
