/**
 * The simtrip command line. Each command resolves its config, picks the engine and hands over to one
 * module (trainer, evaluation, embedding, doctor); this file only parses flags and maps failures to
 * exit codes: 0 ok, 2 usage/config/input error (one line), 1 runtime failure, 130 interrupted.
 */
import { Command, CommanderError } from 'commander';
import { dirname, join } from 'node:path';
import { loadConfig, configToYaml } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { FittedProbe } from '../eval/fitted_probe.js';
import type { EvalResult } from '../eval/protocols.js';
import { initEngine, type EngineInfo } from '../engine/engine.js';
import { describeGpuFailure } from '../engine/gpu_failure.js';
import { checkpointHome, resolveCheckpointPath } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';
import { plural } from '../util/text.js';
import { runDoctor } from './doctor.js';
import { addExportCommand } from './export.js';
import { addPredictCommand } from './predict.js';
import { addSynthCommand } from './synth.js';

/** One message per line on stderr; stdout stays for results (JSON, summaries) that scripts read. */
const log = (line: string) => process.stderr.write(`${line}\n`);

const collect = (value: string, previous: string[]) => [...previous, value];

function configOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-c, --config <file>', 'run configuration (YAML or JSON; `extends:` for presets, see configs/)')
    .option('--set <key=value>', 'override one config key, e.g. --set train.epochs=5 (repeatable; typed by the schema)', collect, []);
}

async function resolveConfig(opts: { config: string; set: string[] }): Promise<Config> {
  return (await loadConfig(opts.config, opts.set)).config;
}

/**
 * The engines `auto` passed over (tfjs-node not installed, ...) are noise to a user who never asked
 * for them: they are printed under --verbose, or for an engine the user named. `simtrip doctor` lists
 * every engine either way.
 */
async function startEngine(cfg: Config, training: boolean, verbose: boolean): Promise<EngineInfo> {
  const engine = await initEngine(cfg.engine.backend, { training, tf32: cfg.engine.tf32, winograd: cfg.engine.winograd });
  for (const line of engine.notices ?? []) log(line);
  for (const line of engine.skipped) {
    if (verbose || line.startsWith(`${engine.requested}:`)) log(`engine: skipped ${line}`);
  }
  return engine;
}

function parseFractions(text: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !(v > 0 && v <= 1))) {
    throw new UserError(`--label-fraction: got '${text}', expected comma-separated fractions in (0, 1], e.g. 0.01,0.1,1`);
  }
  return values;
}

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value)) throw new UserError(`${flag}: got '${text}', expected a whole number`);
  return value;
}

/** Where eval keeps its records (<home>/evals/): the checkpoint's run dir, else the config's. */
function evalHome(cfg: Config, checkpoint: string | undefined): string {
  return checkpoint ? checkpointHome(resolveCheckpointPath(checkpoint)) : join('runs', cfg.name);
}

export function buildProgram(): Command {
  const program = new Command();
  const verbose = (): boolean => program.opts<{ verbose?: boolean }>().verbose === true;
  program
    .name('simtrip')
    .description('Self-supervised image encoders (SimSiam, SimTriplet, BiT transfer) for medical imaging, on TensorFlow.js')
    .option('-v, --verbose', 'print stack traces on errors, and the engines engine.backend auto passed over and why')
    // Set before the commands are added so they inherit it: main() maps commander's exits to ours.
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });

  configOptions(
    program
      .command('train')
      .description('train an encoder with the config\'s SSL method; writes runs/<name>/ (config, metrics.jsonl, checkpoints, report/, and tb/: TensorBoard events unless logging.tensorboard is false)'),
  )
    .option('--run-dir <dir>', 'run directory (default: runs/<config name>)')
    .option('--resume', 'continue the run in the run directory from its last checkpoint, exactly where it stopped')
    .action(async (opts: { config: string; set: string[]; runDir?: string; resume?: boolean }) => {
      const cfg = await resolveConfig(opts);
      const engine = await startEngine(cfg, true, verbose());
      const { train } = await import('../train/trainer.js');
      const runDir = opts.runDir ?? join('runs', cfg.name);
      const { TensorBoardTrainingLog } = await import('../report/tensorboard/training_log.js');
      const result = await train({
        config: cfg,
        runDir,
        resume: opts.resume ?? false,
        engine,
        log,
        handleSignals: true,
        logs: cfg.logging.tensorboard ? [new TensorBoardTrainingLog(runDir, { log })] : [],
      });
      if (result.complete) {
        process.stdout.write(`${result.complete}\n`);
        return;
      }
      if (result.interrupted) {
        log(`stopped (${result.interrupted}) at step ${result.steps}; saved ${result.checkpoint}; continue with --resume`);
        process.exitCode = 130;
        return;
      }
      const knn = result.knnAccuracy === undefined ? '' : `, kNN accuracy ${(100 * result.knnAccuracy).toFixed(2)}%`;
      const loss = result.epochLoss === undefined ? `last step loss ${result.lastLoss.toFixed(4)}` : `loss ${result.epochLoss.toFixed(4)} (mean of epoch ${result.epochs}; last step ${result.lastLoss.toFixed(4)})`;
      process.stdout.write(`trained ${plural(result.epochs, 'epoch')} (${plural(result.steps, 'step')}): ${loss}${knn}; checkpoint ${result.checkpoint}\n`);
    });

  configOptions(
    program
      .command('eval')
      .description(
        'evaluate a frozen encoder: linear probe and/or weighted kNN on the config\'s data, under eval.protocol ' +
          '(split: train -> test, lr/epoch chosen on val when the data has one; logo: leave-one-group-out folds + ensemble on the held-out group; ' +
          'auto: logo when the labelled data has groups); keeps each result as a record in <run dir>/evals/<id>/ (a linear one with its fitted probe, ' +
          'for simtrip predict and export --with-probe; a re-run of the same ' +
          'checkpoint, data, protocol, label fraction, probe settings and seed replaces only that record), draws the UMAP and nearest-neighbour grid of the features, ' +
          'refreshes the run\'s report and, unless logging.tensorboard is false, writes scores, confusion matrices, UMAP, neighbours and the embedding projector to <run dir>/tb/',
      ),
  )
    .option('--checkpoint <path>', 'simtrip checkpoint (.safetensors, .../checkpoints/last, or a run dir); default: the config\'s model (random init or model.weights)')
    .option('--linear-probe', 'train a linear classifier on frozen features (eval.linear.*)')
    .option('--knn', 'weighted kNN on frozen features (eval.knn.k, eval.knn.t)')
    .option('--label-fraction <list>', 'labelled fraction(s) for the probe, class-stratified and seeded, e.g. 0.01,0.1,1')
    .option('--run-dir <dir>', 'the run directory to keep the records in (<dir>/evals/) and whose report to refresh (default: the checkpoint\'s run dir, else runs/<config name>)')
    .option('--out <file.json>', 'also write this evaluation\'s results (with their record ids) to one JSON file')
    .option('--cache-features', 'keep the features as float16 .npy in <run dir>/features/ and reuse them while encoder and data are unchanged (features rounded to float16)')
    .action(async (opts: { config: string; set: string[]; checkpoint?: string; linearProbe?: boolean; knn?: boolean; labelFraction?: string; runDir?: string; out?: string; cacheFeatures?: boolean }) => {
      const cfg = await resolveConfig(opts);
      if (!opts.linearProbe && !opts.knn) throw new UserError('eval: choose --linear-probe and/or --knn');
      const labelFractions = opts.labelFraction === undefined ? undefined : parseFractions(opts.labelFraction);
      const home = opts.runDir ?? evalHome(cfg, opts.checkpoint);
      const engine = await startEngine(cfg, false, verbose());
      const { evaluate } = await import('../eval/evaluate.js');
      // Each fitted probe is kept beside its record, for simtrip predict and export --with-probe.
      const probes = new Map<EvalResult, FittedProbe>();
      const report = await evaluate({
        config: cfg,
        checkpoint: opts.checkpoint,
        linear: opts.linearProbe ?? false,
        knn: opts.knn ?? false,
        labelFractions,
        engine: engine.engine,
        log,
        featureCache: opts.cacheFeatures ? join(home, 'features') : undefined,
        onProbe: (result, probe) => probes.set(result, probe),
        views: true,
      });
      const { keepEvalRecords } = await import('../eval/keep_records.js');
      process.stdout.write(`${await keepEvalRecords(report, cfg, home, { out: opts.out, log, probes })}\n`);
      if (cfg.logging.tensorboard) {
        const { writeEvalEvents } = await import('../eval/eval_tensorboard.js');
        const tb = await writeEvalEvents(home, report, cfg);
        const what = [`${tb.scalars} scalars`, `${tb.images.length} images`, ...(tb.projector ? [`projector ${tb.projector}`] : []), ...(tb.note ? [tb.note] : [])];
        log(`tensorboard ${dirname(tb.file)} at step ${tb.step}: ${what.join(', ')}`);
      }
      // Beside a training run, the run's report is refreshed so it shows these numbers.
      const { isRunDir } = await import('../report/run_data.js');
      if (await isRunDir(home)) {
        const { writeRunReport } = await import('../report/run_report.js');
        log(`report   ${(await writeRunReport(home)).summary}`);
      }
    });

  configOptions(program.command('embed').description('write backbone features (global-average-pooled) of every image in a folder as a float32 (or --dtype f16) .npy [N, D]'))
    .option('--checkpoint <path>', 'simtrip checkpoint; default: the config\'s model (random init or model.weights)')
    .requiredOption('--images <dir>', 'folder of images (png, jpg, tif, ...), embedded in file-name order')
    .requiredOption('--out <file.npy>', 'output .npy; a .txt beside it lists the image of each row')
    .option('--dtype <f32|f16>', 'element type of the .npy: f16 halves the file (values rounded to float16)', 'f32')
    .option('--projector [dir]', 'also write TensorBoard embedding-projector files (features, file names, sprite of thumbnails) to DIR (default: <out>-projector beside the .npy); view with tensorboard --logdir DIR')
    .action(async (opts: { config: string; set: string[]; checkpoint?: string; images: string; out: string; dtype: string; projector?: string | boolean }) => {
      if (opts.dtype !== 'f32' && opts.dtype !== 'f16') throw new UserError(`--dtype: got '${opts.dtype}', expected f32 or f16`);
      const cfg = await resolveConfig(opts);
      await startEngine(cfg, false, verbose());
      const { embedFolder } = await import('../eval/embed.js');
      const dtype = opts.dtype === 'f16' ? 'float16' : 'float32';
      const projector = opts.projector === undefined ? undefined : typeof opts.projector === 'string' ? opts.projector : opts.out.replace(/\.npy$/, '-projector');
      const r = await embedFolder({ config: cfg, checkpoint: opts.checkpoint, imagesDir: opts.images, out: opts.out, dtype, log, projector });
      process.stdout.write(`embedded ${r.count} images -> ${r.out} [${r.count}, ${r.dim}] (names in ${r.names})\n`);
      if (r.projector) process.stdout.write(`projector ${r.projector.name} -> ${r.projector.dir} (tensorboard --logdir ${r.projector.dir})\n`);
    });

  configOptions(
    program
      .command('preview')
      .description('write one PNG of source images beside the augmented views training draws from them with this config and seed (no GPU, no model)'),
  )
    .option('--n <count>', 'items to show, one row each', '16')
    .option('--out <file.png>', 'where to write the PNG (an .svg beside it); default runs/preview-<config name>.png')
    .option('--seed <n>', 'use this seed instead of the config\'s (as --set seed=N): other crops, jitter and neighbours')
    .option('--epoch <e>', 'show the draws of this epoch (0 is the first)', '0')
    .action(async (opts: { config: string; set: string[]; n: string; out?: string; seed?: string; epoch: string }) => {
      const started = performance.now();
      const cfg = await resolveConfig({ config: opts.config, set: opts.seed === undefined ? opts.set : [...opts.set, `seed=${opts.seed}`] });
      const { defaultPreviewPath, writePreview } = await import('../report/preview.js');
      const { path, preview } = await writePreview(cfg, opts.out ?? defaultPreviewPath(cfg), { n: wholeNumber('--n', opts.n), epoch: wholeNumber('--epoch', opts.epoch), log });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      process.stdout.write(`${path} (${preview.items.length} items x ${preview.viewItems.length} views, epoch ${preview.epoch}, seed ${cfg.seed}; ${seconds} s)\n`);
    });

  program
    .command('weights')
    .description('pretrained weight files')
    .command('inspect')
    .description('format, tensor count, size, dtypes and detected architecture of a weight file (headers only), and the config lines that use it')
    .argument('<file>', '.safetensors, BiT .npz, a PyTorch checkpoint (.pth, .pth.tar, .pt, .ckpt, .bin; read without running any code from it), or a simtrip checkpoint / run directory')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      const { inspectWeights, formatWeightsSummary } = await import('../model/inspect.js');
      const summary = await inspectWeights(file);
      process.stdout.write(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : formatWeightsSummary(summary));
    });

  program
    .command('report')
    .description('write a run\'s report (<run>/report/: PNG charts and summary.md); with several runs, also a side-by-side comparison')
    .argument('<run_dirs...>', 'run directories (each with metrics.jsonl and config.yaml, as simtrip train writes them)')
    .option('--out <dir>', 'where to write: the comparison (default: runs/compare-<names>), or one run\'s report (default: <run>/report)')
    .action(async (dirs: string[], opts: { out?: string }) => {
      if (dirs.length === 1) {
        const { writeRunReport } = await import('../report/run_report.js');
        const r = await writeRunReport(dirs[0]!, { outDir: opts.out });
        process.stdout.write(`report: ${r.summary} (${r.files.length - 1} charts)\n`);
        return;
      }
      const { compareRuns } = await import('../report/compare.js');
      const c = await compareRuns(dirs, opts.out);
      process.stdout.write(`comparison of ${dirs.length} runs: ${c.summary} (${c.files.length - 1} charts)\n`);
    });

  program
    .command('doctor')
    .description('report Node, the engines that load here (and why the others do not), the CUDA engine\'s self-check, which one `auto` picks, cores and memory')
    .option('--recheck', 'run the CUDA engine\'s self-check again instead of showing its cached result (after a driver or library change)')
    .action(async (opts: { recheck?: boolean }) => {
      process.stdout.write(await runDoctor({ recheck: opts.recheck ?? false }));
    });

  addSynthCommand(program, log);
  addExportCommand(program);
  addPredictCommand(program, log);

  const config = program.command('config').description('inspect configurations');
  configOptions(config.command('show').description('print the resolved config (extends and --set applied, defaults filled) as YAML')).action(
    async (opts: { config: string; set: string[] }) => {
      process.stdout.write(configToYaml(await resolveConfig(opts)));
    },
  );
  configOptions(config.command('validate').description('check a config; exit 0 when valid, 2 with the first problem otherwise')).action(
    async (opts: { config: string; set: string[] }) => {
      await resolveConfig(opts);
      process.stdout.write(`${opts.config}: valid\n`);
    },
  );

  return program;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  const verbose = argv.includes('-v') || argv.includes('--verbose');
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version come through here with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UserError) {
      log(`simtrip: ${errorMessage(err).replace(/\s*\n\s*/g, ' ')}`);
      for (const line of err.details) log(`  ${line}`);
      if (verbose) log((err as Error).stack ?? '');
      return 2;
    }
    log(`simtrip: ${(err as Error)?.name === 'DivergedError' ? '' : 'failed: '}${describeGpuFailure(err) ?? errorMessage(err)}`);
    if (verbose) log((err as Error)?.stack ?? '');
    return 1;
  }
}
