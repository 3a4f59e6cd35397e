/**
 * Any state-dict file (a .safetensors file, or a torch.save checkpoint: .pth, .pth.tar, .pt, .ckpt,
 * .bin) as one TensorFile whose backbone tensors carry the names simtrip's models use: the released
 * layout is recognised (released_layouts.ts), its prefix stripped and bit_pytorch names renamed.
 * Every other tensor keeps its own name, so a loader reports it as ignored under the name the user
 * sees in the file.
 */
import { extname } from 'node:path';
import { withInputFile } from '../io/source.js';
import { RenamedTensorFile, type TensorFile } from '../io/tensor_file.js';
import { openTorchFile, type TorchFile } from '../io/torch_file.js';
import { TorchStateDict } from '../io/torch_state_dict.js';
import { backboneRenames, findStateDict, NO_CONTEXT, recogniseLayout, type LayoutContext, type ReleasedLayout } from './released_layouts.js';

export interface StateDictFile {
  /** The state dict, backbone tensors renamed. */
  readonly tensors: RenamedTensorFile;
  /** The recognised layout; null when no backbone simtrip reads was found. */
  readonly layout: ReleasedLayout | null;
  /** The backbone's tensors, by their names in `tensors`. */
  readonly backbone: readonly string[];
}

export interface TorchStateDictFile extends StateDictFile {
  readonly torch: TorchFile;
}

/** The extensions torch.save files go by; their format is read from their bytes. */
const TORCH_EXTENSIONS = ['.pth', '.pt', '.tar', '.ckpt', '.bin'];

export function isTorchCheckpointPath(path: string): boolean {
  return TORCH_EXTENSIONS.includes(extname(path).toLowerCase());
}

/** `file` with its backbone under simtrip's names, as recognised in `context`. */
export function withBackboneNames(file: TensorFile, context: LayoutContext = NO_CONTEXT): StateDictFile {
  const names = file.names();
  const layout = recogniseLayout(names, (k) => file.info(k).shape, context);
  const renames = layout ? backboneRenames(names, layout) : new Map<string, string>();
  const tensors = new RenamedTensorFile(file, renames);
  return { tensors, layout, backbone: tensors.names().filter((n) => renames.has(tensors.fileName(n))) };
}

/** Opens a torch.save checkpoint, finds its state dict and recognises the layout (no tensor is read). */
export async function openTorchStateDict(path: string): Promise<TorchStateDictFile> {
  const torch = await openTorchFile(path);
  const { tensors, context } = withInputFile(path, () => findStateDict(torch.root));
  return { ...withBackboneNames(new TorchStateDict(torch, tensors), context), torch };
}
