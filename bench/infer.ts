/**
 * Feature-extraction throughput (eval, kNN, embed, predict) of our inference runtimes next to PyTorch
 * and onnxruntime-node on the ONNX PyTorch exports, on this machine. Every measurement runs in a
 * process of its own, one after another (never at once), so each has the machine and its own peak
 * RSS; the runtimes take turns for --rounds rounds and the median img/s of each is reported.
 *
 *   npm run bench:infer -- [--models r18,r50,bit] [--runtimes tfjs,onednn-plan,onnxruntime]
 *                          [--iters 5] [--warmup 1] [--rounds 3] [--engine auto] [--torch-channels-last 1]
 *   npm run bench:infer -- --folder 2000 [--models r18] [--runtime auto]
 *
 * Models (bench/infer_models.ts): ResNet-18 CIFAR stem width 64 at 32 px, batch 128; ResNet-50 at
 * 224 px, batch 16; BiT-R50x1 at 128 px, batch 32. PyTorch (torchvision, the same weights through
 * simtrip's torchvision-layout export, no_grad, eval, threads = cores) and onnxruntime-node on
 * torch.onnx.export's file run for the ResNets; BiT has no torchvision model, so it is ours only.
 * --torch-channels-last 1 adds PyTorch in NHWC memory format; ratios use the faster PyTorch run.
 * Python: $SIMTRIP_PYTHON, else python3 or /usr/bin/python3 with torch; without one, ours only.
 *
 * --folder N writes N 600x450 JPEGs into two class folders of a temp folder and reports eval and
 * embed end to end (decoding included) against the in-memory rate of the same runtime.
 * Ends with one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { machineSummary } from '../src/engine/engine.js';
import { packageRoot } from '../src/engine/package_root.js';
import { Rng } from '../src/util/rng.js';
import { inferModel, type InferModel } from './infer_models.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'infer_worker.js');
const root = packageRoot();
const PYTORCH = path.join(root, 'bench', 'pytorch_infer.py');

interface Measurement {
  /** Why the runtime cannot run here (the worker measured nothing). */
  unavailable?: string;
  img_per_s: number;
  peak_rss_mib: number;
  description?: string;
  [key: string]: unknown;
}

function flags(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i]!.startsWith('--') || argv[i + 1] === undefined) throw new Error(`expected --flag value pairs, got '${argv[i]}'`);
    m.set(argv[i]!, argv[i + 1]!);
  }
  return m;
}

function lastJson<T>(stdout: string): T | undefined {
  const line = stdout.split('\n').reverse().find((l) => l.trim().startsWith('{'));
  return line ? (JSON.parse(line) as T) : undefined;
}

/** A child to completion; its stderr shows live. Undefined (with a line saying why) when it fails. */
function child<T>(what: string, cmd: string, args: string[]): T | undefined {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const parsed = r.status === 0 ? lastJson<T>(r.stdout ?? '') : undefined;
  if (!parsed) process.stderr.write(`[infer] ${what} failed (exit ${r.status ?? r.error?.message})\n${r.stdout ?? ''}`);
  return parsed;
}

function findPython(): string | undefined {
  const candidates = process.env.SIMTRIP_PYTHON ? [process.env.SIMTRIP_PYTHON] : ['python3', '/usr/bin/python3'];
  return candidates.find((c) => {
    const r = spawnSync(c, ['-c', 'import torch, torchvision'], { stdio: 'ignore' });
    return !r.error && r.status === 0;
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number | undefined, d = 1) => (x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));

interface Row {
  name: string;
  ours: boolean;
  rates: number[];
  rss: number[];
  setup: number[];
  description?: string;
}

/** One model: the runs (ours, PyTorch, ORT on torch's ONNX), --rounds times in turn. */
function benchModel(spec: InferModel, f: Map<string, string>, python: string | undefined, tmp: string): { rows: Row[]; notes: string[] } {
  const runtimes = (f.get('--runtimes') ?? 'tfjs,onednn-plan,onnxruntime').split(',');
  const common = ['--model', spec.key, '--iters', f.get('--iters') ?? '5', '--warmup', f.get('--warmup') ?? '1', '--engine', f.get('--engine') ?? 'auto'];
  const runs: { name: string; ours: boolean; cmd: string; args: string[] }[] = runtimes.map((r) => ({ name: `ours: ${r}`, ours: true, cmd: process.execPath, args: [WORKER, ...common, '--runtime', r] }));
  const notes: string[] = [];
  if (!spec.torch) notes.push(`${spec.label}: no torchvision model, so no PyTorch or torch-exported ONNX run`);
  else if (!python) notes.push('PyTorch skipped: no Python with torch and torchvision (set SIMTRIP_PYTHON)');
  else {
    const weights = path.join(tmp, `${spec.key}.safetensors`);
    const onnx = path.join(tmp, `${spec.key}.onnx`);
    const pt = ['--model', spec.key, '--weights', weights, '--size', String(spec.imageSize), '--batch', String(spec.batch)];
    const ok =
      child(`${spec.key} weights export`, process.execPath, [WORKER, '--model', spec.key, '--export-state-dict', weights]) &&
      child(`${spec.key} torch.onnx.export`, python, [PYTORCH, ...pt, '--export-onnx', onnx]);
    if (ok) {
      const ptTimed = [...pt, '--iters', f.get('--iters') ?? '5', '--warmup', f.get('--warmup') ?? '1'];
      runs.push({ name: 'pytorch (no_grad, eval)', ours: false, cmd: python, args: [PYTORCH, ...ptTimed] });
      if (f.get('--torch-channels-last') === '1') runs.push({ name: 'pytorch (no_grad, eval, channels_last)', ours: false, cmd: python, args: [PYTORCH, ...ptTimed, '--channels-last', '1'] });
      runs.push({ name: 'onnxruntime-node on torch.onnx.export', ours: false, cmd: process.execPath, args: [WORKER, ...common, '--runtime', 'ort-file', '--onnx', onnx] });
    } else notes.push(`${spec.key}: PyTorch runs skipped, its export failed (above)`);
  }
  const rows: Row[] = runs.map((r) => ({ name: r.name, ours: r.ours, rates: [], rss: [], setup: [] }));
  const rounds = Number(f.get('--rounds') ?? 3);
  const skip = new Set<number>();
  for (let round = 0; round < rounds; round++) {
    runs.forEach((r, i) => {
      if (skip.has(i)) return;
      process.stderr.write(`[infer] ${spec.key} round ${round + 1}/${rounds}: ${r.name}\n`);
      const m = child<Measurement>(`${spec.key} ${r.name}`, r.cmd, r.args);
      if (!m) return;
      if (m.unavailable) {
        notes.push(`${r.name}: unavailable here (${m.unavailable})`);
        skip.add(i);
        return;
      }
      rows[i]!.rates.push(m.img_per_s);
      rows[i]!.rss.push(m.peak_rss_mib);
      if (typeof m.setup_ms === 'number') rows[i]!.setup.push(m.setup_ms);
      rows[i]!.description ??= m.description;
    });
  }
  return { rows, notes };
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

async function writeJpegs(dir: string, n: number): Promise<void> {
  const rng = new Rng('bench-infer-folder');
  for (let i = 0; i < n; i++) {
    // A coarse random pattern scaled up: photo-like JPEG sizes, not incompressible noise.
    const small = Buffer.from(Uint8Array.from({ length: 40 * 30 * 3 }, () => Math.floor(rng.next() * 256)));
    const sub = path.join(dir, i % 2 === 0 ? 'a' : 'b');
    await sharp(small, { raw: { width: 40, height: 30, channels: 3 } }).resize(600, 450).jpeg({ quality: 90 }).toFile(path.join(sub, `img${String(i).padStart(5, '0')}.jpg`));
  }
}

async function folderMode(f: Map<string, string>, tmp: string): Promise<object> {
  const n = Number(f.get('--folder'));
  const spec = inferModel((f.get('--models') ?? 'r18').split(',')[0]!);
  const dir = path.join(tmp, 'folder');
  for (const c of ['a', 'b']) mkdirSync(path.join(dir, c), { recursive: true });
  process.stderr.write(`[infer] writing ${n} 600x450 JPEGs to ${dir}\n`);
  await writeJpegs(dir, n);
  const args = [WORKER, '--model', spec.key, '--folder', dir, '--runtime', f.get('--runtime') ?? 'auto', '--engine', f.get('--engine') ?? 'auto', ...(f.has('--batch') ? ['--batch', f.get('--batch')!] : [])];
  const r = child<Record<string, number | string>>('folder run', process.execPath, args);
  if (!r) throw new Error('the folder run failed');
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(`model    ${spec.label}, batch ${r.batch}; ${n} JPEGs of 600x450; runtime ${r.description}`);
  out(`machine  ${machineSummary()}`);
  out('');
  for (const l of table(
    ['path', 'img/s', 'vs in-memory'],
    [
      ['in memory (decoded beforehand)', fmt(r.in_memory_img_per_s as number), '1.00'],
      ['embed, end to end (decode pipelined)', fmt(r.embed_img_per_s as number), fmt(r.embed_ratio as number, 2)],
      ['eval --knn, end to end (cold decode cache)', fmt(r.eval_img_per_s as number), fmt(r.eval_ratio as number, 2)],
    ],
  ))
    out(l);
  out('');
  out(`eval --knn with the images already decoded (set-up, check and kNN included): ${fmt(r.eval_in_memory_img_per_s as number)} img/s;`);
  out(`from the folder it reaches ${fmt(r.eval_ratio_same_command as number, 2)} of that`);
  return r;
}

async function main(): Promise<number> {
  const f = flags(process.argv.slice(2));
  const tmp = mkdtempSync(path.join(tmpdir(), 'simtrip-bench-infer-'));
  try {
    if (f.has('--folder')) {
      process.stdout.write(`${JSON.stringify(await folderMode(f, tmp))}\n`);
      return 0;
    }
    const python = findPython();
    const out = (s: string) => process.stdout.write(`${s}\n`);
    out(`machine  ${machineSummary()}; ${availableParallelism()} threads for every runtime`);
    const results: object[] = [];
    for (const key of (f.get('--models') ?? 'r18,r50,bit').split(',')) {
      const spec = inferModel(key);
      const { rows, notes } = benchModel(spec, f, python, tmp);
      const best = Math.max(...rows.filter((r) => r.ours && r.rates.length).map((r) => median(r.rates)));
      const ref = (prefix: string) => {
        const r = rows.find((x) => x.name.startsWith(prefix) && x.rates.length);
        return r ? median(r.rates) : undefined;
      };
      // The faster PyTorch run is the reference (channels_last, when measured, usually).
      const ptRates = rows.filter((r) => r.name.startsWith('pytorch') && r.rates.length).map((r) => median(r.rates));
      const pt = ptRates.length ? Math.max(...ptRates) : undefined;
      const ort = ref('onnxruntime-node');
      out('');
      out(`${spec.label}, batch ${spec.batch} (median of ${f.get('--rounds') ?? 3} rounds)`);
      const body = rows.map((r) => [
        r.name,
        r.rates.length ? fmt(median(r.rates)) : 'n/a',
        r.rss.length ? fmt(Math.max(...r.rss), 0) : 'n/a',
        r.setup.length ? fmt(median(r.setup), 0) : '',
        pt && r.rates.length ? fmt(median(r.rates) / pt, 2) : '',
        ort && r.rates.length ? fmt(median(r.rates) / ort, 2) : '',
      ]);
      for (const l of table(['run', 'img/s', 'peak RSS MiB', 'setup ms', 'vs pytorch', 'vs ORT(torch)'], body)) out(l);
      for (const r of rows) if (r.description) out(`  ${r.name}: ${r.description}`);
      if (pt) out(`best ours / pytorch: ${fmt(best / pt, 2)}`);
      if (ort) out(`best ours / onnxruntime-node on torch's ONNX: ${fmt(best / ort, 2)}`);
      for (const n of notes) out(n);
      results.push({ model: spec.key, batch: spec.batch, rows: rows.map((r) => ({ run: r.name, img_per_s: r.rates, peak_rss_mib: r.rss, setup_ms: r.setup })), best_ours: best, pytorch: pt ?? null, ort_torch: ort ?? null });
    }
    out(JSON.stringify({ machine: machineSummary(), results }));
    return 0;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = await main();
