/**
 * A kept probe (src/eval/saved_probe.ts) appended to an exported encoder, so the file outputs class
 * probabilities as `simtrip predict` computes them:
 *
 *   onnx                 features -> per member: (x - mean) / std, Gemm (W, b), Softmax -> the members'
 *                        Mean (leave-one-group-out's ensemble); features are first rounded to float16
 *                        (Cast there and back) when eval fitted the probe on cached float16 features.
 *   torchvision / timm   the probe as the model's own classifier, fc.weight / fc.bias (timm's ResNet-v2:
 *                        head.fc, a 1x1 convolution), the standardisation folded in: W' = W / std,
 *                        b' = b - W' mean, so softmax(model(x)) is the probe's output. An ensemble
 *                        of fold probes is no single layer and is refused for these formats.
 */
import type { ModelConfig } from '../config/schema.js';
import type { TensorToWrite } from '../io/safetensors.js';
import type { SavedProbe } from '../eval/saved_probe.js';
import { describeProbe, weightsByClass } from '../eval/saved_probe.js';
import { UserError } from '../util/errors.js';
import type { OnnxHead } from './onnx_encoder.js';
import { classifierPrefix } from './state_dict_export.js';

export const ONNX_PROBABILITIES = 'probabilities';
const FLOAT16 = 10;
const FLOAT = 1;

/** Metadata both formats carry: which probe, its classes (in output order) and what it measured. */
export function probeMetadata(probe: SavedProbe): Record<string, string> {
  const { info } = probe;
  return {
    'simtrip.probe': JSON.stringify({
      record_id: info.record_id,
      what: describeProbe(info),
      classes: info.class_names,
      label_fraction: info.label_fraction,
      protocol: info.protocol,
      combine: info.combine,
      members: info.members.map((m) => m.name),
      encoder: info.encoder,
      features: info.features,
      test: info.test,
    }),
    class_names: JSON.stringify(info.class_names),
  };
}

/** The ONNX head: class probabilities [batch, classes] from the pooled features. */
export function onnxProbeHead(probe: SavedProbe): OnnxHead {
  return (g, features) => {
    const k = probe.info.class_names.length;
    const x =
      probe.info.features.dtype === 'float16'
        ? g.node('Cast', 'features_float32', [g.node('Cast', 'features_float16', [features], { to: { int: FLOAT16 } })], { to: { int: FLOAT } })
        : features;
    const outputs = probe.fitted.members.map(({ probe: p }, i) => {
      const name = `probe.member${i}`;
      let h = x;
      if (p.mean && p.std) {
        h = g.node('Sub', `${name}.center`, [h, g.initializer(`${name}.mean`, [p.dim], p.mean)]);
        h = g.node('Div', `${name}.standardize`, [h, g.initializer(`${name}.std`, [p.dim], p.std)]);
      }
      const logits = g.node('Gemm', `${name}.logits`, [h, g.initializer(`${name}.weight`, [k, p.dim], weightsByClass(p)), g.initializer(`${name}.bias`, [k], p.bias)], { transB: { int: 1 } });
      return g.node('Softmax', `${name}.probabilities`, [logits], { axis: { int: 1 } });
    });
    const output = g.node(outputs.length > 1 ? 'Mean' : 'Identity', ONNX_PROBABILITIES, outputs);
    return { output, dims: ['batch', k], metadata: probeMetadata(probe) };
  };
}

/**
 * The probe as the classifier of a torchvision/timm model (see the file comment), computed in float64
 * and stored as float32.
 */
export function probeClassifierTensors(probe: SavedProbe, config: ModelConfig): TensorToWrite[] {
  const { members } = probe.fitted;
  if (members.length > 1) {
    throw new UserError(
      `--with-probe ${probe.info.record_id}: a leave-one-group-out ensemble of ${members.length} fold probes (the mean of their softmax probabilities) is no single linear layer, so no fc holds it; export it with --format onnx`,
    );
  }
  const p = members[0]!.probe;
  const k = p.numClasses;
  const d = p.dim;
  const weight = weightsByClass(p);
  const bias = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let shift = 0;
    for (let j = 0; j < d; j++) {
      const w = weight[c * d + j]! / (p.std ? p.std[j]! : 1);
      weight[c * d + j] = w;
      shift += w * (p.mean ? p.mean[j]! : 0);
    }
    bias[c] = p.bias[c]! - shift;
  }
  const prefix = classifierPrefix(config);
  // timm's ResNet-v2 classifies with a 1x1 convolution on the pooled map.
  const shape = prefix === 'head.fc' ? [k, d, 1, 1] : [k, d];
  return [
    { name: `${prefix}.weight`, dtype: 'F32', shape, data: weight },
    { name: `${prefix}.bias`, dtype: 'F32', shape: [k], data: bias },
  ];
}
