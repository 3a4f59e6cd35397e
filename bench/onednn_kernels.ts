/**
 * Kernel throughput of the onednn engine against tfjs' pure-JS cpu backend: a 3x3 64->64 convolution
 * on 32x32 inputs (forward, backward data, backward filter) and a large sgemm through BatchMatMul.
 *
 *   node dist/bench/onednn_kernels.js [--batch 64] [--cpu-batch 4] [--iters 10] [--cpu-iters 1] [--gemm 2048] [--skip-cpu]
 *
 * The cpu backend runs a smaller batch (GFLOP/s is a rate, and batch 64 would take minutes there).
 * Prints a table, then one JSON line with every number.
 */
import os from 'node:os';
import { tf } from '../src/engine/tf.js';
import { loadOnednn } from '../src/engine/onednn/loader.js';
import '@tensorflow/tfjs-backend-cpu';

interface Options {
  batch: number;
  cpuBatch: number;
  iters: number;
  cpuIters: number;
  gemm: number;
  skipCpu: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { batch: 64, cpuBatch: 4, iters: 10, cpuIters: 1, gemm: 2048, skipCpu: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--skip-cpu') {
      opts.skipCpu = true;
      continue;
    }
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`${flag} needs a positive integer`);
    if (flag === '--batch') opts.batch = value;
    else if (flag === '--cpu-batch') opts.cpuBatch = value;
    else if (flag === '--iters') opts.iters = value;
    else if (flag === '--cpu-iters') opts.cpuIters = value;
    else if (flag === '--gemm') opts.gemm = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  return opts;
}

/** Best-of-`iters` seconds for one call (after one warm-up call that also builds oneDNN primitives). */
function timeIt(iters: number, fn: () => tf.Tensor): number {
  tf.dispose(fn());
  let best = Infinity;
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    const out = fn();
    // The cpu-family backends compute eagerly; reading one value makes sure nothing is deferred.
    out.dataSync();
    best = Math.min(best, (performance.now() - t0) / 1000);
    tf.dispose(out);
  }
  return best;
}

type ConvResult = { forward: number; backwardData: number; backwardFilter: number };

function convGflops(batch: number, iters: number): ConvResult {
  const [h, c] = [32, 64];
  const flop = 2 * batch * h * h * c * c * 9;
  const x = tf.randomNormal([batch, h, h, c], 0, 1, 'float32', 1) as tf.Tensor4D;
  const w = tf.randomNormal([3, 3, c, c], 0, 0.05, 'float32', 2) as tf.Tensor4D;
  const dy = tf.randomNormal([batch, h, h, c], 0, 1, 'float32', 3) as tf.Tensor4D;
  const forward = timeIt(iters, () => tf.conv2d(x, w, 1, 'same'));
  const backwardData = timeIt(iters, () => tf.conv2dTranspose(dy, w, [batch, h, h, c], 1, 'same'));
  const backwardFilter = timeIt(iters, () =>
    tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, c, c] }) as tf.Tensor,
  );
  tf.dispose([x, w, dy]);
  const g = (s: number) => flop / s / 1e9;
  return { forward: g(forward), backwardData: g(backwardData), backwardFilter: g(backwardFilter) };
}

function gemmGflops(n: number, iters: number): number {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 4);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 5);
  const s = timeIt(iters, () => tf.matMul(a, b));
  tf.dispose([a, b]);
  return (2 * n * n * n) / s / 1e9;
}

async function main(): Promise<void> {
  // Quiet tfjs' "running in Node.js" banner, as the CLI does.
  tf.enableProdMode();
  const opts = parseOptions(process.argv.slice(2));
  const load = await loadOnednn();
  if (!load.ok) {
    console.error(`onednn engine unavailable: ${load.reason} (${load.hint})`);
    process.exit(1);
  }
  await tf.setBackend('onednn');
  const onednn = convGflops(opts.batch, opts.iters);
  const sgemm = gemmGflops(opts.gemm, Math.max(3, Math.ceil(opts.iters / 3)));
  let cpu: ConvResult | null = null;
  if (!opts.skipCpu) {
    await tf.setBackend('cpu');
    cpu = convGflops(opts.cpuBatch, opts.cpuIters);
  }
  const fmt = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(v < 10 ? 2 : 1)).padStart(10);
  console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}; ${load.detail}`);
  console.log(`3x3 conv 64->64 on 32x32, onednn batch ${opts.batch}, cpu batch ${opts.cpuBatch} (GFLOP/s, best of runs)`);
  console.log(`${'direction'.padEnd(16)}${'onednn'.padStart(10)}${'cpu'.padStart(10)}`);
  for (const k of ['forward', 'backwardData', 'backwardFilter'] as const) {
    console.log(`${k.padEnd(16)}${fmt(onednn[k])}${fmt(cpu?.[k])}`);
  }
  console.log(`sgemm ${opts.gemm}^3 via BatchMatMul on onednn: ${sgemm.toFixed(1)} GFLOP/s`);
  console.log(JSON.stringify({ engine: load.detail, threads: Number(process.env.OMP_NUM_THREADS) || os.cpus().length, onednn, cpu, sgemm, opts }));
}

await main();
