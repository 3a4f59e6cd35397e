/** Running exported ONNX models in onnxruntime-node, with the input their metadata describes. */
import * as ort from 'onnxruntime-node';
import { normalizationStats, type Normalization } from '../../src/data/augment.js';
import { ONNX_FEATURES, ONNX_INPUT } from '../../src/export/onnx_encoder.js';
import { readImageResized } from '../../src/io/image.js';

/** What the ONNX model's metadata tells another program to do, done here: resize, crop, x/255, mean/std, NCHW. */
export async function preprocess(files: string[], side: number, normalization: Normalization): Promise<Float32Array> {
  const { mean, std } = normalizationStats(normalization);
  const out = new Float32Array(files.length * 3 * side * side);
  for (const [n, f] of files.entries()) {
    const img = await readImageResized(f, side);
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < side * side; i++) out[(n * 3 + c) * side * side + i] = (img.data[i * 3 + c]! / 255 - mean[c]!) / std[c]!;
    }
  }
  return out;
}

export async function runOnnx(path: string, input: Float32Array, dims: number[], output = ONNX_FEATURES): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(path);
  try {
    return (await session.run({ [ONNX_INPUT]: new ort.Tensor('float32', input, dims) }))[output]!.data as Float32Array;
  } finally {
    await session.release();
  }
}
