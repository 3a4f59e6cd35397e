#!/usr/bin/env node
/**
 * Builds the optional oneDNN addon (build/Release/simtrip_onednn.node) at install time.
 *
 * The addon is an optional engine, so this script never fails the install: without the oneDNN
 * headers, or when the compile fails, it prints one line, records why in
 * build/simtrip_onednn.status.json (src/engine/onednn/native.ts reads it to explain itself) and exits 0.
 * SIMTRIP_SKIP_NATIVE=1 skips the build on purpose.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const statusFile = path.join(root, 'build', 'simtrip_onednn.status.json');

function finish(ok, reason) {
  if (ok) {
    rmSync(statusFile, { force: true });
  } else {
    mkdirSync(path.dirname(statusFile), { recursive: true });
    writeFileSync(statusFile, `${JSON.stringify({ ok, reason, at: new Date().toISOString() })}\n`);
  }
  process.exit(0);
}

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

/** The most telling line of a failed build: the first compiler/linker error, else the last line. */
function firstError(output) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  return (
    lines.find((l) => /\berror\b/i.test(l) && !l.startsWith('gyp ERR! stack') && !/^gyp ERR! (not ok|cwd|node|command|System)/.test(l)) ??
    lines.at(-1) ??
    'no output'
  );
}

if (process.env.SIMTRIP_SKIP_NATIVE === '1') {
  console.log('simtrip: SIMTRIP_SKIP_NATIVE=1; building without the native oneDNN engine');
  finish(false, 'skipped at install (SIMTRIP_SKIP_NATIVE=1)');
}

if (!includeDirs().some((dir) => existsSync(path.join(dir, 'oneapi', 'dnnl', 'dnnl.hpp')))) {
  console.log('simtrip: oneDNN headers not found (apt-get install libdnnl-dev); building without the native engine');
  finish(false, 'oneDNN headers were not found at install');
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) {
  console.log('simtrip: node-gyp not found; building without the native oneDNN engine');
  finish(false, 'node-gyp was not found at install');
}

const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArgs()], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
if (result.status !== 0) {
  const why = result.error ? result.error.message : firstError(`${result.stdout}\n${result.stderr}`);
  console.log(`simtrip: building the native oneDNN engine failed (${why}); continuing without it`);
  finish(false, `the native build failed at install: ${why}`);
}
console.log('simtrip: built the native oneDNN engine (build/Release/simtrip_onednn.node)');
finish(true, '');
