/**
 * The native JPEG decoder (build/Release/simtrip_jpeg.node, native/jpeg/): one g++ call against
 * libjpeg-turbo (Debian's libjpeg62-turbo-dev). Optional like the engines: without it images decode
 * through sharp alone, and `simtrip doctor` says why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstError, nodeInclude, writeStatus } from './build-cuda.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const JPEG_STATUS = 'build/simtrip_jpeg.status.json';

/** Where jpeglib.h is looked for (the tests ask the same question: could the install build it?). */
export const JPEG_HEADER_DIRS = ['/usr/include', '/usr/local/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu'];

/** The one line the install prints for a build result. */
export function jpegBuildLine(r) {
  return r.ok ? 'simtrip: built the native JPEG decoder (build/Release/simtrip_jpeg.node)' : `simtrip: native JPEG decoder not built: ${r.reason}`;
}

/** Returns { ok, reason } and records the reason where the loader finds it. */
export function buildJpeg() {
  const result = compile();
  writeStatus(JPEG_STATUS, result.ok, result.reason);
  return result;
}

function compile() {
  if (!JPEG_HEADER_DIRS.some((d) => existsSync(path.join(d, 'jpeglib.h')))) {
    return { ok: false, reason: 'libjpeg-turbo headers were not found at install (apt-get install libjpeg62-turbo-dev)' };
  }
  const napi = nodeInclude();
  if (!napi) return { ok: false, reason: "Node's headers (node_api.h) were not found at install" };
  mkdirSync(path.join(root, 'build', 'Release'), { recursive: true });
  const args = [
    '-std=c++17', '-O3', '-shared', '-fPIC', '-fvisibility=hidden', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=simtrip_jpeg',
    `-I${napi}`, 'native/jpeg/decode.cc', 'native/jpeg/resample.cc', '-ljpeg', '-o', 'build/Release/simtrip_jpeg.node',
  ];
  const r = spawnSync(process.env.CXX || 'g++', args, { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, reason: `the native build failed at install: ${r.error ? r.error.message : firstError(`${r.stdout}\n${r.stderr}`)}` };
  return { ok: true, reason: '' };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(jpegBuildLine(buildJpeg()));
}
