/**
 * What an image goes through before the encoder at evaluation time (`simtrip embed`, eval's features,
 * `simtrip predict`), as a record another program can follow: the ONNX export writes it into the
 * model's metadata and eval keeps it with every saved probe.
 */
import { normalizationStats, type Normalization } from './augment.js';

export interface Preprocessing {
  readonly imageSize: number;
  readonly normalization: Normalization;
}

export interface PreprocessingRecord {
  color: 'RGB';
  layout: 'NCHW';
  dtype: 'float32';
  resize: { shorter_side: number; filter: string };
  crop: { center: [number, number] };
  scale: '1/255';
  mean: number[];
  std: number[];
  formula: string;
}

export function preprocessingRecord(p: Preprocessing): PreprocessingRecord {
  const { mean, std } = normalizationStats(p.normalization);
  return {
    color: 'RGB',
    layout: 'NCHW',
    dtype: 'float32',
    resize: { shorter_side: p.imageSize, filter: 'lanczos3 (libvips, through sharp)' },
    crop: { center: [p.imageSize, p.imageSize] },
    scale: '1/255',
    mean: [...mean],
    std: [...std],
    formula: 'input[c] = (pixel[c] / 255 - mean[c]) / std[c]',
  };
}
