/**
 * What identifies the encoder a probe was fitted on: a hash of the backbone's weights (every tensor's
 * name, shape and float32 values, in name order) and of the input scaling they expect. It depends on
 * nothing but the numbers that make the features, so it survives copying or moving a run directory
 * and loading the same weights from another file (a checkpoint, or the torchvision file exported
 * from it), while a checkpoint of another step, or of another run, never matches.
 */
import { createHash } from 'node:crypto';
import { BACKBONE_PREFIX, type EncoderModel } from '../model/build.js';

const VERSION = 'simtrip-encoder-fingerprint-1';

/** "sha256:<64 hex digits>". */
export function encoderFingerprint(model: EncoderModel): string {
  const hash = createHash('sha256').update(`${VERSION}\nnormalization ${model.normalization}\n`);
  const params = model.store
    .list()
    .filter((p) => p.name.startsWith(BACKBONE_PREFIX))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of params) {
    const values = p.variable.dataSync() as Float32Array;
    hash.update(`${p.name} [${p.variable.shape.join(',')}]\n`);
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return `sha256:${hash.digest('hex')}`;
}

/** The first digits, for messages: "sha256:3f9a2c1b7e04". */
export function shortFingerprint(fingerprint: string): string {
  return fingerprint.slice(0, 'sha256:'.length + 12);
}
