/**
 * `simtrip doctor`: what this machine can run, and how to enable what it cannot. Each engine is tried
 * for real (loaded and initialised), so the report cannot claim an engine that would fail at `train`;
 * the CUDA engine with its self-check (cached per GPU, driver, libraries and build: shown with its
 * date, run again with --recheck).
 */
import { existsSync } from 'node:fs';
import { AUTO_ORDER, CAN_TRAIN, machineSummary, probeEngines } from '../engine/engine.js';
import { selfCheckCacheFile } from '../engine/cuda/self_check.js';
import { onnxruntimeVersion } from '../engine/onnxruntime/extractor.js';
import { autoInferenceRuntime, inferenceAvailability } from '../eval/inference.js';
import type { ConcreteEngine } from '../engine/engine.js';
import { loadJpegDecoder } from '../io/jpeg_native.js';
import { loadNative } from '../engine/onednn/native.js';

/** How image files become pixels: the native JPEG decoder, or why JPEGs go through sharp. */
function decoderLines(): string[] {
  const jpeg = loadJpegDecoder();
  if (jpeg.ok) return ['images', `  ok    ${'jpeg'.padEnd(15)} native ${jpeg.addon.info().version} with DCT scaling (sharp for what it declines: CMYK, ICC profiles, damaged files; sharp for other formats)`];
  return ['images', `  no    ${'jpeg'.padEnd(15)} ${jpeg.reason}; JPEGs decode through sharp (about 4x the CPU per small image)`, `        ${''.padEnd(15)} to enable: ${jpeg.hint}`];
}

/** engine.inference: each runtime's availability, and what auto picks on the engine auto picks. */
async function inferenceLines(engine: ConcreteEngine | undefined): Promise<string[]> {
  const availability = await inferenceAvailability();
  const ortVersion = await onnxruntimeVersion();
  const what: Record<string, string> = {
    'onednn-plan': 'the encoder compiled into native oneDNN primitives',
    onnxruntime: `onnxruntime-node ${ortVersion ?? ''} CPU`.replace('  ', ' '),
    tfjs: 'the training graph on the active engine',
  };
  const lines = ['inference (engine.inference)'];
  for (const a of availability) {
    lines.push(a.unavailable === undefined ? `  ok    ${a.runtime.padEnd(15)} ${what[a.runtime]}` : `  no    ${a.runtime.padEnd(15)} ${a.unavailable}`);
  }
  const runtime = autoInferenceRuntime(engine ?? 'cpu', availability);
  lines.push(`auto     inference picks ${runtime} on ${engine ?? 'cpu'} (checked on each run's first batch against the training graph)`);
  return lines;
}

/** engine.winograd: whether oneDNN has Winograd 3x3 convs here, and where simtrip uses them. */
function winogradLines(): string[] {
  const native = loadNative();
  if (!native.ok) return [];
  const available = native.addon.info().winograd;
  if (available === undefined) return [];
  return [
    'winograd (engine.winograd)',
    available
      ? '  ok    onednn          3x3 convs with 8x8 outputs or larger as Winograd F(4x4,3x3): inference plans by default, training too with engine.winograd: all'
      : '  no    onednn          this CPU lacks AVX-512, where oneDNN has its Winograd kernel; every conv runs direct',
  ];
}

export async function runDoctor(opts: { recheck?: boolean } = {}): Promise<string> {
  const lines: string[] = [];
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  const nodeNote = nodeMajor >= 20 && nodeMajor < 23 ? 'supported' : 'unsupported: simtrip needs Node >= 20 and < 23 (tfjs-node breaks on 23+)';
  lines.push(`node     ${process.version} (${nodeNote})`);
  lines.push(`machine  ${machineSummary()}`);
  lines.push('engines');
  const probes = await probeEngines(opts);
  for (const p of probes) {
    const trains = CAN_TRAIN[p.engine] ? '' : ' [inference only: cannot train conv nets]';
    if (p.available) lines.push(`  ok    ${p.engine.padEnd(15)} ${p.detail}${trains}`);
    else {
      lines.push(`  no    ${p.engine.padEnd(15)} ${p.detail}`);
      if (p.hint) lines.push(`        ${''.padEnd(15)} to enable: ${p.hint}`);
    }
  }
  const cache = selfCheckCacheFile();
  if (existsSync(cache)) lines.push(`cache    ${cache} (the CUDA engine's self-check results)`);
  const pick = AUTO_ORDER.find((e) => probes.find((p) => p.engine === e)?.available);
  lines.push(`auto     picks ${pick ?? 'nothing (no engine loads: reinstall simtrip)'}`);
  lines.push(...(await inferenceLines(pick)));
  lines.push(...winogradLines());
  lines.push(...decoderLines());
  return `${lines.join('\n')}\n`;
}
