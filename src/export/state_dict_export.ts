/**
 * An encoder as a PyTorch state dict for torchvision or timm, in .safetensors: the backbone alone (no
 * projector or predictor; a classifier only when export adds a kept probe as fc, see probe_export.ts,
 * and the model is then built with num_classes), under the model's own key names, in PyTorch layout,
 * with the `num_batches_tracked` counter every BatchNorm has in PyTorch, so that
 * `load_state_dict(..., strict=True)` accepts it:
 *
 *   resnet18/50, ImageNet stem, width 64   torchvision.models.resnetXX() / timm.create_model('resnetXX',
 *                                           num_classes=0) (torchvision's model with fc = Identity)
 *   BiT (GroupNorm, BiT root, width 64)    timm.create_model('resnetv2_50x1_bit', num_classes=0), ...
 *
 * Models no PyTorch class matches (the CIFAR stem, narrow widths, BiT with BatchNorm) are exported all
 * the same under the same names, and the result says so: for the CIFAR stem it gives the lines that
 * swap the stem of a torchvision/timm model so the file loads strictly.
 */
import type { ModelConfig } from '../config/schema.js';
import type { TensorToWrite } from '../io/safetensors.js';
import { BACKBONE_PREFIX, bitSpecOf, isBitArch, type EncoderModel } from '../model/build.js';
import { checkpointTensors } from '../train/checkpoint.js';
import { UserError } from '../util/errors.js';

export type StateDictFormat = 'torchvision' | 'timm';

export interface StateDictExport {
  readonly tensors: TensorToWrite[];
  /** The PyTorch model the file loads into with strict=True, or why none does. */
  readonly target: { readonly model: string; readonly python: readonly string[] } | { readonly none: string };
  /** Caveats (numerics that differ, what the counters hold). */
  readonly notes: readonly string[];
}

const TORCHVISION_WIDTH = 64;

/** The backbone's tensors without the "backbone." prefix, plus a zero num_batches_tracked per BatchNorm. */
async function backboneTensors(model: EncoderModel): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const t of await checkpointTensors(model.store)) {
    if (!t.name.startsWith(BACKBONE_PREFIX)) continue;
    const name = t.name.slice(BACKBONE_PREFIX.length);
    out.push({ ...t, name, dtype: 'F32' });
    if (name.endsWith('.running_var')) {
      out.push({ name: name.replace(/running_var$/, 'num_batches_tracked'), dtype: 'I64', shape: [], data: new BigInt64Array([0n]) });
    }
  }
  return out;
}

function loadLines(file: string, build: readonly string[]): string[] {
  return ['from safetensors.torch import load_file', ...build, `model.load_state_dict(load_file(${JSON.stringify(file)}), strict=True)`];
}

/** The CIFAR stem swapped into a torchvision/timm ResNet: the module names stay, so the file loads strictly. */
const CIFAR_STEM = ['model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)', 'model.maxpool = torch.nn.Identity()'];

function resnetTarget(config: ModelConfig, format: StateDictFormat, file: string, numClasses?: number): StateDictExport['target'] {
  if (config.width !== TORCHVISION_WIDTH) {
    return { none: `no ${format} ResNet has width ${config.width} (theirs are ${TORCHVISION_WIDTH} wide): the keys are ${format}'s ${config.arch} names, the channels ${config.width}, ${2 * config.width}, ${4 * config.width}, ${8 * config.width} per stage` };
  }
  const torchvision =
    numClasses === undefined
      ? { model: `torchvision.models.${config.arch}() with fc = Identity`, build: [`model = torchvision.models.${config.arch}()`, 'model.fc = torch.nn.Identity()  # no classifier: the model returns the pooled features'] }
      : { model: `torchvision.models.${config.arch}(num_classes=${numClasses})`, build: [`model = torchvision.models.${config.arch}(num_classes=${numClasses})`] };
  const timm = `timm.create_model(${JSON.stringify(config.arch)}, num_classes=${numClasses ?? 0})`;
  const build = format === 'torchvision' ? ['import torch, torchvision', ...torchvision.build] : ['import torch, timm', `model = ${timm}`];
  const cifar = config.stem === 'cifar';
  const model = format === 'torchvision' ? torchvision.model : timm.replace(/"/g, "'");
  return { model: cifar ? `${model}, its stem swapped for the CIFAR stem (no ${format} class has it)` : model, python: loadLines(file, cifar ? [...build, ...CIFAR_STEM] : build) };
}

/** timm's model name for a BiT arch: bit-r50x1 -> resnetv2_50x1_bit. */
export function timmBitName(arch: string): string {
  const { depths, widthFactor } = bitSpecOf(arch);
  const depth = 3 * depths.reduce((a, b) => a + b, 0) + 2;
  return `resnetv2_${depth}x${widthFactor}_bit`;
}

function bitTarget(config: ModelConfig, file: string, numClasses?: number): StateDictExport['target'] {
  const name = timmBitName(config.arch);
  const why: string[] = [];
  if (config.stem === 'cifar') why.push('the CIFAR stem (3x3/2 conv, no max-pool)');
  if (config.norm === 'batch') why.push('BatchNorm in place of GroupNorm');
  if (config.width !== TORCHVISION_WIDTH) why.push(`root width ${config.width}`);
  if (why.length > 0) return { none: `no timm model has ${why.join(', ')}: the keys are ${name}'s` };
  const create = `timm.create_model(${JSON.stringify(name)}, num_classes=${numClasses ?? 0})`;
  return { model: create.replace(/"/g, "'"), python: loadLines(file, ['import timm', `model = ${create}`]) };
}

/**
 * The PyTorch model a state dict of this encoder loads into strictly, with the Python lines; or why
 * none does. With `numClasses` the file holds a classifier too (a probe), and the model is built with it.
 */
export function stateDictTarget(config: ModelConfig, format: StateDictFormat, file: string, numClasses?: number): StateDictExport['target'] {
  if (!isBitArch(config.arch)) return resnetTarget(config, format, file, numClasses);
  if (format === 'torchvision') {
    throw new UserError(`--format torchvision: torchvision has no ResNet-v2 (BiT, model.arch ${config.arch}); use --format timm (${timmBitName(config.arch)}) or --format onnx`);
  }
  return bitTarget(config, file, numClasses);
}

/** The classifier's key prefix in the model `format` builds for `config`: fc (ResNet), head.fc (timm's ResNet-v2). */
export function classifierPrefix(config: ModelConfig): string {
  return isBitArch(config.arch) ? 'head.fc' : 'fc';
}

export async function exportStateDict(model: EncoderModel, config: ModelConfig, format: StateDictFormat, file: string, numClasses?: number): Promise<StateDictExport> {
  const target = stateDictTarget(config, format, file, numClasses);
  const bit = isBitArch(config.arch);
  const notes: string[] = [];
  if (bit) notes.push('timm standardises BiT kernels with eps 1e-8 where simtrip (and BiT) use 1e-10: features differ in the last digits');
  if (!bit || config.norm === 'batch') notes.push('num_batches_tracked is written as 0: simtrip does not count batches (PyTorch only uses it for BatchNorm with momentum=None)');
  return { tensors: await backboneTensors(model), target, notes };
}
