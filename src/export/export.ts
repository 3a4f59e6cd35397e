/**
 * `simtrip export`: an encoder out of simtrip, for PyTorch code (a torchvision or timm state dict in
 * .safetensors) or for ONNX Runtime (a .onnx model of the encoder's pooled features).
 */
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensors } from '../io/safetensors.js';
import { UserError } from '../util/errors.js';
import { openEncoderSource, type EncoderSource } from './encoder_source.js';
import { encoderOnnx, ONNX_FEATURES, ONNX_INPUT } from './onnx_encoder.js';
import { ONNX_OPSET } from './onnx_graph.js';
import { exportStateDict, type StateDictFormat } from './state_dict_export.js';

export const EXPORT_FORMATS = ['torchvision', 'timm', 'onnx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  /** A simtrip run, checkpoint, or weight file. */
  readonly checkpoint: string;
  readonly format: ExportFormat;
  readonly out: string;
  /** Input side for the ONNX model and its preprocessing metadata (default: the run's data.image_size). */
  readonly imageSize?: number;
}

export interface ExportResult {
  readonly out: string;
  /** What was written and how to use it, for the terminal. */
  readonly lines: string[];
}

const EXTENSION: Record<ExportFormat, string> = { torchvision: '.safetensors', timm: '.safetensors', onnx: '.onnx' };

export function checkExportOptions(opts: ExportOptions): void {
  if (!(EXPORT_FORMATS as readonly string[]).includes(opts.format)) {
    throw new UserError(`--format: got '${opts.format}', expected ${EXPORT_FORMATS.join(', ')}`);
  }
  if (!opts.out.endsWith(EXTENSION[opts.format])) {
    throw new UserError(`--out: got '${opts.out}', expected a file name ending in ${EXTENSION[opts.format]} for --format ${opts.format}`);
  }
  if (opts.imageSize !== undefined && !(Number.isInteger(opts.imageSize) && opts.imageSize >= 1)) {
    throw new UserError(`--image-size: got '${opts.imageSize}', expected a positive integer`);
  }
}

/** Metadata both formats carry: where the encoder came from and its model settings. */
function provenance(src: EncoderSource): Record<string, string> {
  return { 'simtrip.source': src.description, 'simtrip.model': JSON.stringify(src.config) };
}

async function writeStateDict(src: EncoderSource, format: StateDictFormat, out: string): Promise<string[]> {
  const exported = await exportStateDict(src.model, src.config, format, out);
  const target = 'model' in exported.target ? exported.target : null;
  await writeSafetensors(out, exported.tensors, {
    format: 'pt',
    ...provenance(src),
    'simtrip.export': JSON.stringify({ format, loads_into: target?.model ?? null, python: target?.python ?? null, no_class: 'none' in exported.target ? exported.target.none : null }),
  });
  const lines = [`wrote ${out}: ${format} state dict of the ${src.config.arch} encoder (${exported.tensors.length} tensors, no heads) from ${src.description}`];
  if (target) lines.push(`loads with strict=True into ${target.model}:`, ...target.python.map((l) => `  ${l}`));
  else if ('none' in exported.target) lines.push(`no PyTorch class to load it into strictly: ${exported.target.none}`);
  lines.push(...exported.notes.map((n) => `note: ${n}`));
  return lines;
}

async function writeOnnx(src: EncoderSource, out: string): Promise<string[]> {
  const bytes = encoderOnnx(src.model, { imageSize: src.imageSize, normalization: src.model.normalization, metadata: provenance(src) });
  await writeFileAtomic(out, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const d = src.model.backbone.featureDim;
  return [
    `wrote ${out}: ONNX (opset ${ONNX_OPSET}) of the ${src.config.arch} encoder from ${src.description}`,
    `input '${ONNX_INPUT}' [batch, 3, ${src.imageSize}, ${src.imageSize}] float32 NCHW RGB, output '${ONNX_FEATURES}' [batch, ${d}]; the batch is dynamic`,
    `preprocessing (in the model's metadata): resize the shorter side to ${src.imageSize}, centre crop, x/255, then ${src.model.normalization === 'bit' ? '(x - 0.5) / 0.5' : 'ImageNet mean/std'}`,
  ];
}

export async function exportEncoder(opts: ExportOptions): Promise<ExportResult> {
  checkExportOptions(opts);
  const src = await openEncoderSource(opts.checkpoint, opts.imageSize);
  try {
    const lines = opts.format === 'onnx' ? await writeOnnx(src, opts.out) : await writeStateDict(src, opts.format, opts.out);
    return { out: opts.out, lines };
  } finally {
    src.model.store.dispose();
  }
}
