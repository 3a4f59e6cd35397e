#!/usr/bin/env node
/**
 * Bundles the CLI and the benchmarks into dist/ with esbuild.
 *
 * Why a bundle rather than tsc's per-file output: tfjs-core registers its gradients from an ES-module
 * file whose imports carry no file extensions, which Node's loader cannot follow, and its CommonJS
 * build registers none. Bundled from tfjs' ES modules, every part (core, cpu kernels, gradients)
 * comes from one copy of tfjs-core. Packages with native parts or data files of their own (sharp, the
 * wasm backend, tfjs-node) stay external and load from node_modules.
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// `--outdir DIR --entries a,b --no-sourcemap --self-contained`: a slim copy that runs without
// node_modules (e.g. .gpu/dist for a GPU machine, where only sharp is missing and only images need it).
const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const only = arg('--entries')?.split(',');

const entryPoints = {
    simtrip: 'src/cli/bin.ts',
    // Worker threads run a file: the augmentation pool (src/data/parallel_augment.ts) starts this one.
    augment_worker: 'src/data/augment_worker.ts',
    'bench/suite': 'bench/suite.ts',
    'bench/train_throughput': 'bench/train_throughput.ts',
    'bench/weights_load': 'bench/weights_load.ts',
    'bench/onednn_kernels': 'bench/onednn_kernels.ts',
    'bench/compare': 'bench/compare.ts',
    'bench/data_throughput': 'bench/data_throughput.ts',
    'bench/infer': 'bench/infer.ts',
    'bench/infer_worker': 'bench/infer_worker.ts',
    'bench/e2e_train': 'bench/e2e_train.ts',
    'bench/tensorboard_writer': 'bench/tensorboard_writer.ts',
    'bench/step_overhead': 'bench/step_overhead.ts',
    'bench/infer_plan': 'bench/infer_plan.ts',
    'check/cuda': 'src/check/cuda.ts',
};

// Packages with native parts or data files of their own stay outside any bundle. The installed CLI
// also loads its pure-JS dependencies from node_modules; check:cuda, meant to run where there is no
// node_modules, and a --self-contained build carry them inside.
const NATIVE_PACKAGES = ['sharp', 'onnxruntime-node', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-backend-wasm'];
const SELF_CONTAINED = new Set(['check/cuda']);
const selected = only ? Object.fromEntries(Object.entries(entryPoints).filter(([k]) => only.includes(k))) : entryPoints;
const allSelfContained = args.includes('--self-contained');
const groups = [
  [Object.fromEntries(Object.entries(selected).filter(([k]) => allSelfContained || SELF_CONTAINED.has(k))), NATIVE_PACKAGES],
  [Object.fromEntries(Object.entries(selected).filter(([k]) => !allSelfContained && !SELF_CONTAINED.has(k))), [...NATIVE_PACKAGES, 'commander', 'yaml', 'zod']],
];

for (const [entries, external] of groups) {
  if (Object.keys(entries).length === 0) continue;
  await build({
    absWorkingDir: root,
    entryPoints: entries,
    outdir: arg('--outdir') ?? 'dist',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // ES-module builds first, so tfjs-core and its gradients resolve to the same files.
    mainFields: ['module', 'main'],
    external,
    // CommonJS dependencies bundled into an ES module still call require() for Node built-ins.
    banner: { js: "import { createRequire as __simtripCreateRequire } from 'node:module'; const require = __simtripCreateRequire(import.meta.url);" },
    sourcemap: !args.includes('--no-sourcemap'),
    logLevel: 'warning',
  });
}

// Data files the bundles read at run time, beside them (src/report/tensorboard/schema.ts looks there).
const outdir = path.resolve(root, arg('--outdir') ?? 'dist');
mkdirSync(outdir, { recursive: true });
copyFileSync(path.join(root, 'src/report/tensorboard/tensorboard.proto'), path.join(outdir, 'tensorboard.proto'));
