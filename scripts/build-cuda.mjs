/**
 * Builds the CUDA engine's two addons from native/cuda/ (called by scripts/build-native.mjs at install,
 * or on its own: `node scripts/build-cuda.mjs [host|gpu]`):
 *
 *  - build/Release/simtrip_cuda.node: nvcc, for the GPU. Built whenever nvcc is found (PATH, $NVCC,
 *    $CUDA_HOME/bin, /usr/local/cuda/bin). cuDNN and cuBLAS are loaded at run time, so their headers
 *    are optional: where cudnn.h / cublas_v2.h are found they are used (the calls are type-checked
 *    against them), elsewhere native/cuda/gpu/api/ declares the few functions the engine calls.
 *  - build/Release/simtrip_cuda_host.node: g++, the same kernels run by the CUDA emulator in
 *    native/cuda/host/ (SIMTRIP_HOST_EMU). It is what CI's tests of the CUDA engine run on.
 *
 * Neither failure fails the install: each writes build/<addon>.status.json with the reason, which the
 * loader (src/engine/cuda/native.ts) reports. Objects are cached in build/cuda-*\/obj and recompiled
 * when a source, any header under native/, or the flags change. SIMTRIP_SKIP_CUDA=1 skips both;
 * SIMTRIP_CUDA_ARCHS (default "80;86;89;90") picks the GPU architectures (SASS for each, PTX for the last).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// SIMTRIP_CUDA_BUILD_DIR puts a build elsewhere (scripts/device/pack.sh builds an sm_90-only copy).
const buildDir = process.env.SIMTRIP_CUDA_BUILD_DIR ?? 'build';
export const ADDONS = {
  gpu: { file: `${buildDir}/Release/simtrip_cuda.node`, status: `${buildDir}/simtrip_cuda.status.json`, objDir: `${buildDir}/cuda-gpu/obj` },
  host: { file: `${buildDir}/Release/simtrip_cuda_host.node`, status: `${buildDir}/simtrip_cuda_host.status.json`, objDir: `${buildDir}/cuda-host/obj` },
};

function list(dir, exts) {
  const full = path.resolve(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full)
    .filter((f) => exts.some((e) => f.endsWith(e)))
    .sort()
    .map((f) => path.join(dir, f));
}

function headersUnder(dir) {
  const out = [];
  const walk = (d) => {
    for (const entry of readdirSync(path.resolve(root, d), { withFileTypes: true })) {
      const rel = path.join(d, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (/\.(h|cuh|hpp)$/.test(entry.name)) out.push(rel);
    }
  };
  walk(dir);
  return out;
}

/** Sources of each flavour: the shared ones plus the flavour's own folder. */
export function sources(flavour) {
  const shared = [...list('native/cuda', ['.cc', '.cu']), ...list('native/cuda/kernels', ['.cu']), 'native/shared/napi_args.cc'];
  return [...shared, ...list(`native/cuda/${flavour}`, ['.cc', '.cu'])];
}

export function nodeInclude() {
  const candidates = [
    process.env.SIMTRIP_NAPI_INCLUDE,
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(path.dirname(process.execPath)), 'include', 'node'),
  ].filter(Boolean);
  return candidates.find((d) => existsSync(path.join(d, 'node_api.h'))) ?? null;
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

export function findNvcc() {
  const candidates = [
    process.env.NVCC,
    which('nvcc'),
    process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'bin', 'nvcc'),
    process.env.CUDA_PATH && path.join(process.env.CUDA_PATH, 'bin', 'nvcc'),
    '/usr/local/cuda/bin/nvcc',
  ].filter(Boolean);
  return candidates.find((c) => existsSync(c)) ?? null;
}

/** Include folders holding cudnn.h / cublas_v2.h, where this machine has them (optional). */
function libraryIncludes() {
  const dirs = [
    process.env.CUDNN_INCLUDE,
    process.env.CUBLAS_INCLUDE,
    process.env.CUDNN_PATH && path.join(process.env.CUDNN_PATH, 'include'),
    process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'include'),
    '/usr/local/cuda/include',
    '/usr/include',
    '/usr/include/x86_64-linux-gnu',
  ].filter(Boolean);
  const found = [];
  for (const header of ['cudnn.h', 'cublas_v2.h']) {
    const dir = dirs.find((d) => existsSync(path.join(d, header)));
    if (dir && !found.includes(dir)) found.push(dir);
  }
  return found;
}

function archFlags() {
  const archs = (process.env.SIMTRIP_CUDA_ARCHS ?? '80;86;89;90').split(/[;,\s]+/).filter(Boolean);
  const flags = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
  const last = archs[archs.length - 1];
  if (last) flags.push('-gencode', `arch=compute_${last},code=compute_${last}`);
  return flags;
}

function toolchain(flavour, napi) {
  const common = ['-std=c++17', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=simtrip_cuda', `-I${path.resolve(root, 'native')}`, `-I${napi}`];
  if (flavour === 'host') {
    return {
      compiler: process.env.CXX || 'g++',
      compile: (src) => [...common, '-O2', '-fPIC', '-fvisibility=hidden', '-DSIMTRIP_HOST_EMU', ...(src.endsWith('.cu') ? ['-x', 'c++'] : [])],
      link: ['-shared'],
      libs: [],
    };
  }
  const nvcc = findNvcc();
  if (!nvcc) return null;
  const includes = libraryIncludes().map((d) => `-I${d}`);
  return {
    compiler: nvcc,
    compile: () => [...common, ...includes, '-O3', '-Xcompiler', '-fPIC,-fvisibility=hidden', '--expt-relaxed-constexpr', ...archFlags()],
    link: ['-shared', '-cudart', 'static', ...archFlags()],
    libs: ['-ldl', '-lrt', '-lpthread'],
  };
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ ok: false, out: e.message }));
    child.on('close', (code) => resolve({ ok: code === 0, out }));
  });
}

/** The most telling line of a failed build: the first error (node-gyp's own stack lines aside), else the last line. */
export function firstError(output) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  return (
    lines.find((l) => /\berror\b/i.test(l) && !l.startsWith('gyp ERR! stack') && !/^gyp ERR! (not ok|cwd|node|command|System)/.test(l)) ??
    lines.at(-1) ??
    'no output'
  );
}

/** build/<addon>.status.json: removed after a good build, else the reason the loader will report. */
export function writeStatus(statusFile, ok, reason) {
  const file = path.resolve(root, statusFile);
  if (ok) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ ok, reason, at: new Date().toISOString() })}\n`);
}

async function compileAll(tc, srcs, objDir) {
  const flagsHash = createHash('sha1').update(JSON.stringify([tc.compiler, tc.compile('x.cu'), tc.compile('x.cc')])).digest('hex');
  const headerTime = Math.max(0, ...headersUnder('native').map((h) => statSync(path.resolve(root, h)).mtimeMs));
  const stampFile = path.resolve(root, objDir, 'flags.sha1');
  const sameFlags = existsSync(stampFile) && readFileSync(stampFile, 'utf8') === flagsHash;
  mkdirSync(path.resolve(root, objDir), { recursive: true });
  const jobs = srcs.map((src) => {
    const obj = path.join(objDir, `${src.replace(/^native\//, '').replace(/[/.]/g, '_')}.o`);
    const objPath = path.resolve(root, obj);
    const fresh = sameFlags && existsSync(objPath) && statSync(objPath).mtimeMs > Math.max(statSync(path.resolve(root, src)).mtimeMs, headerTime);
    return { src, obj, fresh };
  });
  const queue = jobs.filter((j) => !j.fresh);
  const width = Math.max(1, os.cpus().length);
  let failure = null;
  const worker = async () => {
    for (let job = queue.shift(); job && !failure; job = queue.shift()) {
      const r = await run(tc.compiler, [...tc.compile(job.src), '-c', job.src, '-o', job.obj]);
      if (!r.ok) failure = `${job.src}: ${firstError(r.out)}`;
      if (!r.ok && process.env.SIMTRIP_BUILD_VERBOSE === '1') process.stderr.write(r.out);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  if (!failure) writeFileSync(stampFile, flagsHash);
  return { objs: jobs.map((j) => j.obj), failure, compiled: jobs.length - jobs.filter((j) => j.fresh).length };
}

/**
 * One build of a flavour at a time (several shells or test runs may start one): an exclusive lock file,
 * taken over when older than ten minutes (a killed build).
 */
async function withLock(name, f) {
  const lock = path.resolve(root, buildDir, `${name}.lock`);
  mkdirSync(path.dirname(lock), { recursive: true });
  for (;;) {
    try {
      closeSync(openSync(lock, 'wx'));
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10 * 60 * 1000) rmSync(lock, { force: true });
      } catch {
        // released meanwhile
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await f();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Builds one flavour; returns { ok, reason }. Never throws. */
export async function buildCuda(flavour) {
  return withLock(`cuda-${flavour}`, () => buildUnlocked(flavour));
}

async function buildUnlocked(flavour) {
  const addon = ADDONS[flavour];
  const what = flavour === 'gpu' ? 'the CUDA engine' : 'the CUDA engine host emulation (tests)';
  const fail = (reason) => {
    writeStatus(addon.status, false, reason);
    return { ok: false, reason };
  };
  if (process.env.SIMTRIP_SKIP_CUDA === '1') return fail('skipped at install (SIMTRIP_SKIP_CUDA=1)');
  const napi = nodeInclude();
  if (!napi) return fail("Node's N-API headers (node_api.h) were not found; set SIMTRIP_NAPI_INCLUDE");
  const tc = toolchain(flavour, napi);
  if (!tc) return fail('nvcc was not found at install (PATH, $NVCC, $CUDA_HOME/bin, /usr/local/cuda/bin)');
  const t0 = Date.now();
  const { objs, failure, compiled } = await compileAll(tc, sources(flavour), addon.objDir);
  if (failure) return fail(`compiling ${what} failed: ${failure}`);
  mkdirSync(path.dirname(path.resolve(root, addon.file)), { recursive: true });
  // Linked beside the addon and renamed over it: a process that has the old one loaded keeps its copy.
  const partial = `${addon.file}.partial`;
  const linked = await run(tc.compiler, [...tc.link, '-o', partial, ...objs, ...tc.libs]);
  if (!linked.ok) return fail(`linking ${what} failed: ${firstError(linked.out)}`);
  renameSync(path.resolve(root, partial), path.resolve(root, addon.file));
  writeStatus(addon.status, true, '');
  return { ok: true, reason: `${compiled} of ${objs.length} files compiled in ${((Date.now() - t0) / 1000).toFixed(1)} s` };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const flavours = process.argv.slice(2).length ? process.argv.slice(2) : ['host', 'gpu'];
  for (const f of flavours) {
    if (!ADDONS[f]) throw new Error(`unknown flavour ${f} (host or gpu)`);
    const r = await buildCuda(f);
    console.log(`simtrip: ${f === 'gpu' ? 'CUDA engine' : 'CUDA host emulation'} ${r.ok ? `built (${ADDONS[f].file}; ${r.reason})` : `not built: ${r.reason}`}`);
  }
}
