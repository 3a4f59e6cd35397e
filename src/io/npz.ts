/**
 * NumPy .npz archives (zip files of .npy members), as BiT checkpoints are distributed. Opening reads
 * only the zip directory; each array is read and inflated when asked for, so unused members (such as
 * a 21k-class head) cost nothing.
 */
import { InputFileError } from '../util/errors.js';
import { decodeNpy, decodeNpyInfo, type NpyArray, type NpyInfo } from './npy.js';
import { openRangeReader, withInputFile, type RangeReader } from './source.js';
import { readZipDirectory, readZipMember, readZipMemberPrefix, type ZipEntry } from './zip.js';

const SUFFIX = '.npy';

function arrayName(memberName: string): string {
  return memberName.endsWith(SUFFIX) ? memberName.slice(0, -SUFFIX.length) : memberName;
}

export class NpzFile {
  /** @internal Use openNpz. */
  constructor(
    readonly path: string,
    private readonly source: RangeReader,
    private readonly members: ReadonlyMap<string, ZipEntry>,
  ) {}

  /** Array names (member names without '.npy'), in archive order. */
  names(): string[] {
    return [...this.members.keys()];
  }

  has(name: string): boolean {
    return this.members.has(arrayName(name));
  }

  /**
   * dtype and shape of one member from its .npy header alone: reads (and inflates) only the first
   * bytes of the member, so listing a multi-GB archive costs a few KB per array.
   */
  info(name: string): NpyInfo & { readonly storedBytes: number } {
    const entry = this.entry(name);
    const context = `member '${entry.name}'`;
    for (let want = 256; ; want *= 4) {
      const head = withInputFile(this.path, () => readZipMemberPrefix(this.source, entry, want), context);
      const info = decodeNpyInfo(head, this.path, entry.name);
      if (info) return { ...info, storedBytes: entry.compressedSize };
      if (want >= entry.compressedSize) {
        throw new InputFileError(this.path, `${context}: truncated .npy header`);
      }
    }
  }

  private entry(name: string): ZipEntry {
    const entry = this.members.get(arrayName(name));
    if (!entry) throw new InputFileError(this.path, `no array named '${name}'`);
    return entry;
  }

  /** Reads, inflates and decodes one member; `name` may carry the '.npy' suffix. */
  read(name: string): NpyArray {
    const entry = this.entry(name);
    const context = `member '${entry.name}'`;
    const bytes = withInputFile(this.path, () => readZipMember(this.source, entry), context);
    return decodeNpy(bytes, this.path, entry.name);
  }
}

export async function openNpz(path: string): Promise<NpzFile> {
  const source = openRangeReader(path);
  const entries = withInputFile(path, () => readZipDirectory(source));
  const members = new Map<string, ZipEntry>();
  for (const entry of entries) {
    if (!entry.name.endsWith('/')) members.set(arrayName(entry.name), entry);
  }
  return new NpzFile(path, source, members);
}
