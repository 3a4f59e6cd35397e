/**
 * The grid of augmented views TensorBoard shows while a run trains (tag views/train): the first rows
 * of a batch, one column per view (SimSiam's pair, SimTriplet's anchor, neighbour and second anchor
 * view), de-normalised to the pixels the network receives. Pure JavaScript (pngjs), so it costs a GPU
 * run nothing it does not already have: the views are the host buffers the step was fed.
 */
import { viewPixels, type Normalization } from '../data/augment.js';
import { encodePng, tileMosaic } from './tile_sheet.js';

/** PNG of the first `rows` items of a batch's views ([B, side, side, 3] float32 each), 2 px apart. */
export function viewGridPng(views: readonly Float32Array[], side: number, normalization: Normalization, rows = 8): Buffer {
  const batch = (views[0]?.length ?? 0) / (side * side * 3);
  const n = Math.min(rows, batch);
  if (!(n >= 1) || !Number.isInteger(batch)) throw new RangeError(`views of ${views[0]?.length ?? 0} values are not [B, ${side}, ${side}, 3]`);
  const tiles = Array.from({ length: n }, (_, r) => views.map((v) => ({ pixels: viewPixels(v, r, side, normalization), side })));
  return encodePng(tileMosaic(tiles, 1, 2).image);
}
