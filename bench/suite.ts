/**
 * `npm run bench`: the standard benchmark set, each configuration in its own process so peak memory is
 * its own: SimSiam ResNet-18 (CIFAR, 32 px), BiT-R50x1 (GroupNorm, BiT root) at 64 and 128 px, and
 * loading an R50x1-sized BiT .npz. `npm run bench -- --engine cuda` runs the GPU set instead: ResNet-18
 * CIFAR at batch 512, ResNet-50 at 224 px, BiT-R50x1 GroupNorm at 128 and 224 px (batch 64) and a
 * SimTriplet step (ResNet-50, 128 px). Other arguments run one training-throughput configuration
 * (`npm run bench -- --arch bit-r50x1 --size 128 --batch 8`; flags in train_throughput.ts).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

const gpu = (extra: string[]) => ({ script: 'train_throughput.js', args: ['--engine', 'cuda', '--steps', '10', '--warmup', '3', ...extra] });
const runs: Array<{ script: string; args: string[] }> =
  args.length === 2 && args[0] === '--engine' && args[1] === 'cuda'
    ? [
        gpu(['--arch', 'resnet18', '--size', '32', '--batch', '512']),
        gpu(['--arch', 'resnet50', '--size', '224', '--batch', '64']),
        gpu(['--arch', 'bit-r50x1', '--size', '128', '--batch', '64']),
        gpu(['--arch', 'bit-r50x1', '--size', '224', '--batch', '64']),
        gpu(['--arch', 'resnet50', '--size', '128', '--batch', '64', '--method', 'simtriplet']),
      ]
    : args.length > 0
    ? [{ script: 'train_throughput.js', args }]
    : [
        { script: 'train_throughput.js', args: [] },
        { script: 'train_throughput.js', args: ['--arch', 'bit-r50x1', '--size', '64', '--batch', '16', '--steps', '3'] },
        { script: 'train_throughput.js', args: ['--arch', 'bit-r50x1', '--size', '128', '--batch', '8', '--steps', '2'] },
        { script: 'weights_load.js', args: [] },
      ];

for (const run of runs) {
  process.stdout.write(`\n== ${run.script} ${run.args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [join(here, run.script), ...run.args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
