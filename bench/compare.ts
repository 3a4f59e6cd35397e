/**
 * Our SimSiam training throughput next to PyTorch's on this machine: runs bench/train_throughput
 * (dist/bench/train_throughput.js) and bench/pytorch_simsiam.py with the same flags, one after the
 * other (never at once), and prints img/s, ms/step, peak memory and the ratio ours / PyTorch.
 *
 *   npm run bench:compare -- [--arch resnet18|resnet50] [--width 64] [--size 32] [--batch 64]
 *                            [--proj-dim 2048] [--steps 5] [--warmup 1] [--engine auto|cuda|onednn]
 *                            [--precision fp32|mixed16] [--tf32 convs|all|off] [--winograd inference|all|off]
 *
 * With --engine cuda PyTorch runs on the same GPU (channels_last, cudnn.benchmark, its default TF32
 * policy, which is ours with --tf32 convs), with --precision mixed16 under AMP, and the table adds
 * both GPU memory peaks. The ratio compares the training step alone on both sides (PyTorch uses
 * random inputs, ours views augmented beforehand); ours with augmentation in line is shown too.
 * Python: $SIMTRIP_PYTHON if set, else the first of `python3`, `/usr/bin/python3` that can import torch
 * (a pyenv python3 does not see Debian's python3-torch). Without one, prints a notice and our numbers
 * only, and exits 0. Ends with one JSON line.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../src/engine/package_root.js';

// Beside this bundle wherever it was built (dist/bench, or a slim copy for a GPU machine).
const OURS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'train_throughput.js');
const root = packageRoot();
const PYTORCH = path.join(root, 'bench', 'pytorch_simsiam.py');
/** Flags both benchmarks understand; --engine and --arch go to ours only. */
const SHARED = new Set(['--arch', '--width', '--size', '--batch', '--proj-dim', '--steps', '--warmup']);
const OURS_ONLY = new Set(['--engine', '--precision', '--tf32', '--winograd']);

interface OursResult {
  engine: string;
  engine_detail: string;
  machine: string;
  model: string;
  batch: number;
  img_per_s: number;
  img_per_s_with_augmentation: number;
  step_ms: number;
  data_ms: number;
  peak_rss_mib: number;
  gpu_peak_mib?: number;
  [key: string]: unknown;
}

interface PytorchResult {
  framework: 'pytorch';
  torch: string;
  threads: number;
  img_per_s: number;
  step_ms: number;
  peak_rss_mib: number;
  peak_gpu_mib?: number | null;
  device?: string;
  [key: string]: unknown;
}

function splitFlags(argv: string[]): { ours: string[]; pytorch: string[]; arch: string } {
  const ours: string[] = [];
  const pytorch: string[] = [];
  let arch = 'resnet18';
  let device = 'cpu';
  let amp = false;
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (SHARED.has(flag)) {
      ours.push(flag, value);
      pytorch.push(flag, value);
      if (flag === '--arch') arch = value;
    } else if (OURS_ONLY.has(flag)) {
      ours.push(flag, value);
      if (flag === '--engine' && value === 'cuda') device = 'cuda';
      if (flag === '--precision') amp = value === 'mixed16';
    } else {
      throw new Error(`unknown flag ${flag} (takes ${[...SHARED, ...OURS_ONLY].join(', ')})`);
    }
  }
  pytorch.push('--device', device, '--amp', amp ? '1' : '0');
  return { ours, pytorch, arch };
}

/** The last stdout line that parses as a JSON object. */
function lastJson<T>(stdout: string): T | undefined {
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]!) as T;
    } catch {
      // not JSON; keep looking
    }
  }
  return undefined;
}

/** Runs a child to completion; its progress (stderr) shows live, its stdout is captured. */
function run(cmd: string, args: string[]): { status: number | null; stdout: string; error?: Error } {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout ?? '', error: r.error };
}

/** The interpreter to run PyTorch with, or undefined (with the ones tried) when none imports torch. */
function findPython(): { python?: string; tried: string[] } {
  const override = process.env.SIMTRIP_PYTHON;
  const candidates = override ? [override] : ['python3', '/usr/bin/python3'];
  for (const c of candidates) {
    const r = spawnSync(c, ['-c', 'import torch'], { stdio: 'ignore' });
    if (!r.error && r.status === 0) return { python: c, tried: candidates };
  }
  return { tried: candidates };
}

const fmt = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');

async function main(): Promise<number> {
  const { ours: oursArgs, pytorch: ptArgs, arch } = splitFlags(process.argv.slice(2));

  process.stderr.write(`[compare] ours: node ${path.relative(root, OURS)} ${oursArgs.join(' ')}\n`);
  const o = run(process.execPath, [OURS, ...oursArgs]);
  const ours = lastJson<OursResult>(o.stdout);
  if (o.status !== 0 || !ours) {
    process.stderr.write(`[compare] our benchmark failed (exit ${o.status ?? o.error?.message})\n${o.stdout}`);
    return 1;
  }

  let pt: PytorchResult | undefined;
  let notice: string | undefined;
  let ptFailed = false;
  const { python, tried } = findPython();
  if (arch !== 'resnet18' && arch !== 'resnet50') {
    notice = `PyTorch comparison skipped: bench/pytorch_simsiam.py implements resnet18 and resnet50 (got --arch ${arch}).`;
  } else if (!python) {
    notice =
      `PyTorch comparison skipped: no Python with torch found (tried ${tried.join(', ')}). ` +
      'Install it with `apt-get install python3-torch` (Debian; then /usr/bin/python3 has it) or `pip install torch`, ' +
      'or set SIMTRIP_PYTHON to an interpreter that can `import torch`.';
  } else {
    process.stderr.write(`[compare] pytorch: ${python} ${path.relative(root, PYTORCH)} ${ptArgs.join(' ')}\n`);
    const p = run(python, [PYTORCH, ...ptArgs]);
    pt = lastJson<PytorchResult>(p.stdout);
    if (p.status !== 0 || !pt) {
      pt = undefined;
      ptFailed = true;
      notice = `PyTorch benchmark failed (exit ${p.status ?? p.error?.message}); see its output above.`;
    }
  }

  const ratio = pt ? ours.img_per_s / pt.img_per_s : undefined;
  const memoryRatio = pt?.peak_gpu_mib && ours.gpu_peak_mib !== undefined ? ours.gpu_peak_mib / pt.peak_gpu_mib : undefined;
  const gpu = ours.gpu_peak_mib !== undefined;

  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`model          ${ours.model}, batch ${ours.batch}`);
  out(`machine        ${ours.machine}${pt?.device && pt.device !== 'cpu' ? `, ${pt.device}` : ''}`);
  const header = ['run', 'img/s', 'ms/step', gpu ? 'GPU peak' : 'peak RSS'];
  const mem = (gpuMib: number | null | undefined, rss: number) => (gpu ? `${fmt(gpuMib ?? NaN, 0)} MiB` : `${fmt(rss, 0)} MiB`);
  const rows: string[][] = [
    [`ours: ${ours.engine} (${ours.engine_detail}), step only`, fmt(ours.img_per_s, 2), fmt(ours.step_ms, 1), mem(ours.gpu_peak_mib, ours.peak_rss_mib)],
    [`ours, with augmentation on the main thread (+${fmt(ours.data_ms, 1)} ms)`, fmt(ours.img_per_s_with_augmentation, 2), fmt(ours.step_ms + ours.data_ms, 1), ''],
  ];
  if (pt) rows.push([`pytorch ${pt.torch} (${gpu ? String(pt.device) : `${pt.threads} threads`}, random inputs)`, fmt(pt.img_per_s, 2), fmt(pt.step_ms, 1), mem(pt.peak_gpu_mib, pt.peak_rss_mib)]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  out('');
  out(line(header));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) out(line(r));
  out('');
  if (ratio !== undefined) out(`ratio ours/pytorch, training step: ${ratio.toFixed(2)}`);
  if (memoryRatio !== undefined) out(`ratio ours/pytorch, GPU memory peak: ${memoryRatio.toFixed(2)}`);
  if (notice) out(notice);

  const result = {
    ours,
    pytorch: pt ?? null,
    ours_img_per_s: ours.img_per_s,
    ours_img_per_s_with_augmentation: ours.img_per_s_with_augmentation,
    pytorch_img_per_s: pt?.img_per_s ?? null,
    ratio_ours_over_pytorch: ratio ?? null,
    ratio_gpu_memory_ours_over_pytorch: memoryRatio ?? null,
    python: python ?? null,
    notice: notice ?? null,
  };
  out(JSON.stringify(result));
  return ptFailed ? 1 : 0;
}

process.exitCode = await main();
