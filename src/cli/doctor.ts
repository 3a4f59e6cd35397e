/**
 * `simtrip doctor`: what this machine can run, and how to enable what it cannot. Each engine is tried
 * for real (loaded and initialised), so the report cannot claim an engine that would fail at `train`;
 * the CUDA engine with its self-check (cached per GPU, driver, libraries and build: shown with its
 * date, run again with --recheck).
 */
import { existsSync } from 'node:fs';
import { AUTO_ORDER, CAN_TRAIN, machineSummary, probeEngines } from '../engine/engine.js';
import { selfCheckCacheFile } from '../engine/cuda/self_check.js';

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
  return `${lines.join('\n')}\n`;
}
