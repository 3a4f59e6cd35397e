/**
 * `simtrip export`: registers the command; the work is in src/export/export.ts, loaded when it runs.
 */
import type { Command } from 'commander';
import { positiveInteger } from './args.js';
import { initEngine } from '../engine/engine.js';

export function addExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      'write an encoder for PyTorch or ONNX Runtime: a torchvision or timm state dict (.safetensors, backbone only, loads with strict=True) ' +
        'or an ONNX model of the pooled features (dynamic batch; the preprocessing in its metadata); with --with-probe, encoder and probe: a classifier',
    )
    .requiredOption('--checkpoint <path>', 'a simtrip run, checkpoint (.safetensors), or any weight file simtrip reads (.pth/.pth.tar/.ckpt/.bin, .safetensors, BiT .npz)')
    .requiredOption('--format <format>', 'torchvision | timm (state dict in .safetensors) | onnx (.onnx)')
    .requiredOption('--out <file>', 'where to write: FILE.safetensors for torchvision/timm, FILE.onnx for onnx')
    .option('--image-size <px>', "input side of the ONNX model (default: the probe's, else the run's data.image_size; for a weight file 32 with the CIFAR stem, else 224)", positiveInteger)
    .option(
      '--with-probe [id]',
      'append a linear probe `simtrip eval --linear-probe` kept (its record id or the start of one; default: the one fitted on this checkpoint): ' +
        'onnx outputs class probabilities (class names in the metadata); torchvision/timm write it as fc.weight/fc.bias (timm BiT: head.fc) with the feature standardisation folded in, for the model built with num_classes. Refuses a probe fitted on other weights',
    )
    .option('--run-dir <dir>', "with --with-probe: the run directory whose evals/ hold the probe (default: the checkpoint's run directory)")
    .action(async (opts: { checkpoint: string; format: string; out: string; imageSize?: number; withProbe?: string | true; runDir?: string }) => {
      const { checkExportOptions, exportEncoder } = await import('../export/export.js');
      const options = { checkpoint: opts.checkpoint, format: opts.format as 'onnx', out: opts.out, imageSize: opts.imageSize, withProbe: opts.withProbe, runDir: opts.runDir };
      checkExportOptions(options);
      // Exporting reads weights and lays them out (transposes, BiT's standardisation): any engine will do.
      const engine = await initEngine('auto');
      for (const line of engine.notices ?? []) process.stderr.write(`${line}\n`);
      const result = await exportEncoder(options);
      process.stdout.write(`${result.lines.join('\n')}\n`);
    });
}
