#!/usr/bin/env node
/**
 * Builds the optional native engines at install time:
 *  - the oneDNN addon (build/Release/simtrip_onednn.node) with node-gyp, where oneDNN's headers are;
 *  - the JPEG decoder (build/Release/simtrip_jpeg.node, scripts/build-jpeg.mjs) where libjpeg-turbo's
 *    headers are;
 *  - the CUDA addon (build/Release/simtrip_cuda.node) with nvcc, where nvcc is, and its host-emulated
 *    twin for the tests (scripts/build-cuda.mjs).
 *
 * Each is an optional engine, so this script never fails the install: a missing toolchain or a failed
 * compile prints one line, records why in build/<addon>.status.json (the engines' loaders read it to
 * explain themselves) and the script still exits 0. SIMTRIP_SKIP_NATIVE=1 skips every native build;
 * SIMTRIP_SKIP_CUDA=1 only the CUDA ones.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCuda, firstError, writeStatus } from './build-cuda.mjs';
import { buildJpeg, JPEG_STATUS, jpegBuildLine } from './build-jpeg.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const record = (ok, reason) => writeStatus('build/simtrip_onednn.status.json', ok, reason);

function includeDirs() {
  const fromEnv = [process.env.CPATH, process.env.CPLUS_INCLUDE_PATH, process.env.DNNLROOT && path.join(process.env.DNNLROOT, 'include')]
    .filter(Boolean)
    .flatMap((v) => v.split(path.delimiter))
    .filter(Boolean);
  return [...fromEnv, '/usr/include', '/usr/local/include'];
}

function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not a dependency; npm ships its own copy
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => c && existsSync(c)) ?? null;
}

/** Node's headers from the local install, so node-gyp does not try to download them. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.dirname(path.dirname(process.execPath));
  return existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

/** Returns [ok, reason]; prints one line either way. */
function buildOnednn() {
  if (!includeDirs().some((dir) => existsSync(path.join(dir, 'oneapi', 'dnnl', 'dnnl.hpp')))) {
    console.log('simtrip: oneDNN headers not found (apt-get install libdnnl-dev); building without the native engine');
    return [false, 'oneDNN headers were not found at install'];
  }
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) {
    console.log('simtrip: node-gyp not found; building without the native oneDNN engine');
    return [false, 'node-gyp was not found at install'];
  }
  const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (result.status !== 0) {
    const why = result.error ? result.error.message : firstError(`${result.stdout}\n${result.stderr}`);
    console.log(`simtrip: building the native oneDNN engine failed (${why}); continuing without it`);
    return [false, `the native build failed at install: ${why}`];
  }
  console.log('simtrip: built the native oneDNN engine (build/Release/simtrip_onednn.node)');
  return [true, ''];
}

if (process.env.SIMTRIP_SKIP_NATIVE === '1') {
  console.log('simtrip: SIMTRIP_SKIP_NATIVE=1; building without the native engines');
  record(false, 'skipped at install (SIMTRIP_SKIP_NATIVE=1)');
  writeStatus(JPEG_STATUS, false, 'skipped at install (SIMTRIP_SKIP_NATIVE=1)');
  process.env.SIMTRIP_SKIP_CUDA = '1';
} else {
  record(...buildOnednn());
  // node-gyp rebuild empties build/: the JPEG decoder and the CUDA addons come after it.
  console.log(jpegBuildLine(buildJpeg()));
}

for (const [flavour, what] of [['host', 'the CUDA engine host emulation (tests)'], ['gpu', 'the CUDA engine']]) {
  const r = await buildCuda(flavour);
  console.log(r.ok ? `simtrip: built ${what} (${r.reason})` : `simtrip: ${what} not built: ${r.reason}`);
}
process.exit(0);
