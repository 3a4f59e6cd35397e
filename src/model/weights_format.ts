/**
 * The one answer for a file in a format simtrip does not read as weights: `weights inspect` and
 * `--checkpoint` (eval, embed) give the same message for the same file.
 */
import { extname } from 'node:path';
import { InputFileError } from '../util/errors.js';
import { isTorchCheckpointPath } from './state_dicts.js';

export function unsupportedWeightsFormat(path: string): InputFileError {
  const ext = extname(path).toLowerCase();
  return new InputFileError(
    path,
    `unsupported weights format '${ext || '(no extension)'}' (expected .safetensors, .npz, or a torch.save file: .pth, .pth.tar, .pt, .ckpt, .bin)`,
  );
}

/**
 * Why `path` cannot be a simtrip checkpoint, from its name alone: weights of another kind (BiT .npz,
 * a torch.save file) belong in model.weights; anything else gets weights inspect's message. Undefined
 * for a .safetensors file, which only its metadata can tell.
 */
export function notACheckpoint(path: string): InputFileError | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === '.safetensors') return undefined;
  if (ext === '.npz' || isTorchCheckpointPath(path)) {
    return new InputFileError(path, `not a simtrip checkpoint (a ${ext} weights file); pretrained weights go in model.weights`);
  }
  return unsupportedWeightsFormat(path);
}
