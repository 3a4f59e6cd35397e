/**
 * Where cuDNN 9 and cuBLAS may live on a machine, in the order they are tried: explicit variables
 * (CUDNN_PATH, CUBLAS_PATH, CUDA_HOME), the loader's own paths (LD_LIBRARY_PATH), the system
 * folders, and the nvidia-* wheels of a Python install (pip install torch brings both). The addon
 * dlopens the first candidate that loads; a bare soname last lets the dynamic loader search too.
 *
 * Each candidate carries the libraries to load before it, from its own folder and of its own major
 * version only, in dependency order: cuDNN 9's front library loads its sub-libraries by soname and
 * cuBLAS loads cuBLASLt, and a folder may also hold another major (pip and apt installs of cuDNN 8 and
 * 9 side by side), whose copies must never be loaded into the same process.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

export interface LibrarySearch {
  /** Candidate lines for the addon: the files to load first and the library last, tab-separated. */
  cudnn: string[];
  cublas: string[];
  /** Folders that were searched, for the error message. */
  searched: string[];
}

const SONAMES = { cudnn: ['libcudnn.so.9'], cublas: ['libcublas.so.13', 'libcublas.so.12'] };

/**
 * What each library needs loaded first, in dependency order (cuDNN 9's documented layering: the graph
 * library, then the engines and heuristics on it, then ops, cnn on ops, adv on both).
 */
const DEPENDENCIES: Record<string, readonly string[]> = {
  libcudnn: ['libcudnn_graph', 'libcudnn_engines_precompiled', 'libcudnn_engines_runtime_compiled', 'libcudnn_heuristic', 'libcudnn_ops', 'libcudnn_cnn', 'libcudnn_adv'],
  libcublas: ['libcublasLt'],
};

function exists(dir: string): boolean {
  try {
    return existsSync(dir);
  } catch {
    return false;
  }
}

/** site-packages/nvidia/{cudnn,cublas,cu13,...}/lib of every Python the machine has on PATH. */
function pythonNvidiaLibDirs(): string[] {
  const dirs: string[] = [];
  for (const python of ['python3', 'python']) {
    let out = '';
    try {
      out = execFileSync(python, ['-c', 'import nvidia, sys; print("\\n".join(nvidia.__path__))'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 5000,
      });
    } catch {
      continue;
    }
    for (const root of out.split('\n').filter(Boolean)) {
      let subdirs: string[] = [];
      try {
        subdirs = readdirSync(root);
      } catch {
        continue;
      }
      for (const sub of subdirs) {
        const lib = path.join(root, sub, 'lib');
        if (exists(lib) && !dirs.includes(lib)) dirs.push(lib);
      }
    }
    if (dirs.length > 0) break;
  }
  return dirs;
}

export function searchDirs(env: NodeJS.ProcessEnv = process.env, withPython = true): string[] {
  const fromEnv = [env.CUDNN_PATH, env.CUBLAS_PATH, env.CUDA_HOME, env.CUDA_PATH]
    .filter((d): d is string => !!d)
    .flatMap((d) => [path.join(d, 'lib64'), path.join(d, 'lib'), d]);
  const ld = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const system = ['/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib/x86_64-linux-gnu'];
  const all = [...fromEnv, ...ld, ...system, ...(withPython ? pythonNvidiaLibDirs() : [])];
  return [...new Set(all)].filter(exists);
}

/**
 * The files to load before `file` (a path like /x/libcudnn.so.9): its dependencies of the same major
 * version in the same folder, in dependency order, each as its major's soname (libcudnn_ops.so.9)
 * or, without that link, the newest versioned file of that major (libcudnn_ops.so.9.1.0).
 */
export function preloadsFor(file: string): string[] {
  const match = /^(lib[A-Za-z]+)\.so\.(\d+)$/.exec(path.basename(file));
  const dir = path.dirname(file);
  const needs = match ? DEPENDENCIES[match[1]!] : undefined;
  if (!match || !needs || dir === '.') return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const major = match[2]!;
  return needs.flatMap((lib) => {
    const soname = `${lib}.so.${major}`;
    if (names.includes(soname)) return [path.join(dir, soname)];
    const versioned = names.filter((n) => n.startsWith(`${soname}.`)).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    return versioned.length ? [path.join(dir, versioned.at(-1)!)] : [];
  });
}

export function findLibraries(env: NodeJS.ProcessEnv = process.env, withPython = true): LibrarySearch {
  const dirs = searchDirs(env, withPython);
  const find = (names: string[]) => [
    ...dirs
      .flatMap((d) => names.map((n) => path.join(d, n)))
      .filter(exists)
      .map((f) => [...preloadsFor(f), f].join('\t')),
    // Last resort: the dynamic loader's own search (ldconfig cache, rpath).
    ...names,
  ];
  return { cudnn: find(SONAMES.cudnn), cublas: find(SONAMES.cublas), searched: dirs };
}

export const INSTALL_HINTS = {
  driver: 'install the NVIDIA driver for your GPU (nvidia-smi must list it)',
  cudnn: 'install cuDNN 9 (apt-get install cudnn9-cuda-13, or pip install nvidia-cudnn-cu13) or set CUDNN_PATH to its folder',
  cublas: 'install cuBLAS (apt-get install libcublas-13-0, or pip install nvidia-cublas) or set CUBLAS_PATH / CUDA_HOME',
};
