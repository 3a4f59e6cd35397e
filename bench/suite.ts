/**
 * `npm run bench`: the standard benchmark set, each configuration in its own process so peak RSS is
 * its own: SimSiam ResNet-18 (CIFAR, 32 px), BiT-R50x1 (GroupNorm, BiT root) at 64 and 128 px, and
 * loading an R50x1-sized BiT .npz. With arguments it runs one training-throughput configuration
 * instead (`npm run bench -- --arch bit-r50x1 --size 128 --batch 8`; flags in train_throughput.ts).
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

const runs: Array<{ script: string; args: string[] }> =
  args.length > 0
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
