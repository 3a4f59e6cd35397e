/**
 * `simtrip export`: an encoder out of simtrip, for PyTorch code (a torchvision or timm state dict in
 * .safetensors) or for ONNX Runtime (a .onnx model of the encoder's pooled features); with a probe
 * eval kept (--with-probe), a classifier whose outputs are the probe's class probabilities.
 */
import { describeProbe, probeForEncoder, type SavedProbe } from '../eval/saved_probe.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeSafetensors } from '../io/safetensors.js';
import { checkpointHome } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';
import { openEncoderSource, type EncoderSource } from './encoder_source.js';
import { encoderOnnx, ONNX_FEATURES, ONNX_INPUT } from './onnx_encoder.js';
import { ONNX_OPSET } from './onnx_graph.js';
import { ONNX_PROBABILITIES, onnxProbeHead, probeClassifierTensors, probeMetadata } from './probe_export.js';
import { classifierPrefix, exportStateDict, type StateDictFormat } from './state_dict_export.js';

export const EXPORT_FORMATS = ['torchvision', 'timm', 'onnx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface ExportOptions {
  /** A simtrip run, checkpoint, or weight file. */
  readonly checkpoint: string;
  readonly format: ExportFormat;
  readonly out: string;
  /** Input side for the ONNX model and its preprocessing metadata (default: the probe's, else the run's data.image_size). */
  readonly imageSize?: number;
  /** Append a kept probe: its record id (or the start of one), or true for the one fitted on this encoder. */
  readonly withProbe?: string | true;
  /** Where the probes are (its evals/); default: the checkpoint's run directory. */
  readonly runDir?: string;
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
  if (opts.runDir !== undefined && opts.withProbe === undefined) throw new UserError('--run-dir: says where the probe of --with-probe is; add --with-probe');
}

/** Metadata both formats carry: where the encoder came from and its model settings. */
function provenance(src: EncoderSource): Record<string, string> {
  return { 'simtrip.source': src.description, 'simtrip.model': JSON.stringify(src.config) };
}

async function writeStateDict(src: EncoderSource, format: StateDictFormat, out: string, probe: SavedProbe | undefined): Promise<string[]> {
  const classes = probe?.info.class_names;
  const exported = await exportStateDict(src.model, src.config, format, out, classes?.length);
  const head = probe ? probeClassifierTensors(probe, src.config) : [];
  const target = 'model' in exported.target ? exported.target : null;
  const python = target && classes ? [...target.python, `classes = ${JSON.stringify(classes)}  # probabilities = model(images).softmax(dim=1), one column per class`] : target?.python;
  await writeSafetensors(out, [...exported.tensors, ...head], {
    format: 'pt',
    ...provenance(src),
    ...(probe ? probeMetadata(probe) : {}),
    'simtrip.export': JSON.stringify({ format, loads_into: target?.model ?? null, python: python ?? null, no_class: 'none' in exported.target ? exported.target.none : null }),
  });
  const what = probe ? `with the probe ${probe.info.record_id} as its classifier` : 'no heads';
  const lines = [`wrote ${out}: ${format} state dict of the ${src.config.arch} encoder (${exported.tensors.length + head.length} tensors, ${what}) from ${src.description}`];
  if (target) lines.push(`loads with strict=True into ${target.model}:`, ...python!.map((l) => `  ${l}`));
  else if ('none' in exported.target) lines.push(`no PyTorch class to load it into strictly: ${exported.target.none}`);
  if (probe) {
    const prefix = classifierPrefix(src.config);
    lines.push(
      `probe: ${describeProbe(probe.info)}, classes ${classes!.join(', ')}; ${prefix}.weight / ${prefix}.bias hold it with the feature standardisation folded in, so softmax(model(x)) gives simtrip predict's probabilities`,
    );
    if (probe.info.features.dtype === 'float16') lines.push('note: eval fitted this probe on features rounded to float16 (its feature cache); PyTorch does not round them, so probabilities differ in the last digits');
  }
  lines.push(...exported.notes.map((n) => `note: ${n}`));
  return lines;
}

async function writeOnnx(src: EncoderSource, out: string, imageSize: number, probe: SavedProbe | undefined): Promise<string[]> {
  const head = probe && onnxProbeHead(probe);
  const bytes = encoderOnnx(src.model, { imageSize, normalization: src.model.normalization, metadata: provenance(src), head });
  await writeFileAtomic(out, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const d = src.model.backbone.featureDim;
  const output = probe
    ? `output '${ONNX_PROBABILITIES}' [batch, ${probe.info.class_names.length}]: the probabilities of ${probe.info.class_names.join(', ')} (class_names in the metadata) from the probe ${probe.info.record_id} (${describeProbe(probe.info)}: feature standardisation, Gemm, Softmax${probe.fitted.members.length > 1 ? ', the mean over the folds' : ''})`
    : `output '${ONNX_FEATURES}' [batch, ${d}]`;
  const lines = [
    `wrote ${out}: ONNX (opset ${ONNX_OPSET}) of the ${src.config.arch} encoder${probe ? ' and probe' : ''} from ${src.description}`,
    `input '${ONNX_INPUT}' [batch, 3, ${imageSize}, ${imageSize}] float32 NCHW RGB, ${output}; the batch is dynamic`,
    `preprocessing (in the model's metadata): resize the shorter side to ${imageSize}, centre crop, x/255, then ${src.model.normalization === 'bit' ? '(x - 0.5) / 0.5' : 'ImageNet mean/std'}`,
  ];
  if (probe && imageSize !== probe.info.preprocessing.image_size) {
    lines.push(`note: the probe was fitted on ${probe.info.preprocessing.image_size} px inputs; at ${imageSize} px the features, and so the probabilities, are not the ones eval measured`);
  }
  return lines;
}

export async function exportEncoder(opts: ExportOptions): Promise<ExportResult> {
  checkExportOptions(opts);
  const src = await openEncoderSource(opts.checkpoint, opts.imageSize);
  try {
    const probe = opts.withProbe === undefined ? undefined : await probeForEncoder(opts.runDir ?? checkpointHome(src.path), opts.withProbe === true ? undefined : opts.withProbe, src.model, src.description, '--with-probe');
    const imageSize = opts.imageSize ?? probe?.info.preprocessing.image_size ?? src.imageSize;
    const lines = opts.format === 'onnx' ? await writeOnnx(src, opts.out, imageSize, probe) : await writeStateDict(src, opts.format, opts.out, probe);
    return { out: opts.out, lines };
  } finally {
    src.model.store.dispose();
  }
}
