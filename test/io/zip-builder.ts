/**
 * Writes small zip archives for the reader tests: stored or deflated members, optional ZIP64 extra
 * fields and end records (with small values, which the format allows), an archive comment.
 */
import { deflateRawSync } from 'node:zlib';
import { crc32Table } from '../../src/io/crc32.js';

export interface MemberSpec {
  readonly name: string;
  readonly data: Uint8Array;
  /** 0 stored, 8 deflate; any other number labels the stored bytes with that method. */
  readonly method?: number;
  /** Override of the recorded CRC-32, to produce corrupt archives. */
  readonly crc?: number;
  /** Override of the member's compressed bytes (e.g. garbage deflate data). */
  readonly payload?: Uint8Array;
}

export interface ZipOptions {
  readonly zip64?: boolean;
  readonly comment?: string;
}

const U32_MAX = 0xffffffff;

function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
}
function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}
function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

function zip64Extra(values: number[]): Buffer {
  return Buffer.concat([u16(1), u16(values.length * 8), ...values.map(u64)]);
}

export function buildZip(members: readonly MemberSpec[], options: ZipOptions = {}): Buffer {
  const zip64 = options.zip64 ?? false;
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const method = m.method ?? 0;
    const payload = m.payload ?? (method === 8 ? deflateRawSync(m.data) : Buffer.from(m.data));
    const crc = m.crc ?? crc32Table(m.data);
    const name = Buffer.from(m.name, 'utf8');
    const sizes = zip64 ? [U32_MAX, U32_MAX] : [payload.length, m.data.length];
    const common = [u16(0x800), u16(method), u16(0), u16(0x21), u32(crc), u32(sizes[0]!), u32(sizes[1]!), u16(name.length)];
    const localExtra = zip64 ? zip64Extra([m.data.length, payload.length]) : Buffer.alloc(0);
    locals.push(Buffer.concat([u32(0x04034b50), u16(zip64 ? 45 : 20), ...common, u16(localExtra.length), name, localExtra, payload]));
    const centralExtra = zip64 ? zip64Extra([m.data.length, payload.length, offset]) : Buffer.alloc(0);
    centrals.push(
      Buffer.concat([
        u32(0x02014b50), u16(zip64 ? 45 : 20), u16(zip64 ? 45 : 20), ...common, u16(centralExtra.length),
        u16(0), u16(0), u16(0), u32(0), u32(zip64 ? U32_MAX : offset), name, centralExtra,
      ]),
    );
    offset += locals[locals.length - 1]!.length;
  }
  const directory = Buffer.concat(centrals);
  const comment = Buffer.from(options.comment ?? '', 'utf8');
  const tail: Buffer[] = [];
  if (zip64) {
    const recordAt = offset + directory.length;
    tail.push(
      Buffer.concat([u32(0x06064b50), u64(44), u16(45), u16(45), u32(0), u32(0), u64(members.length), u64(members.length), u64(directory.length), u64(offset)]),
      Buffer.concat([u32(0x07064b50), u32(0), u64(recordAt), u32(1)]),
    );
  }
  const count = zip64 ? 0xffff : members.length;
  tail.push(
    Buffer.concat([
      u32(0x06054b50), u16(0), u16(0), u16(count), u16(count),
      u32(zip64 ? U32_MAX : directory.length), u32(zip64 ? U32_MAX : offset), u16(comment.length), comment,
    ]),
  );
  return Buffer.concat([...locals, directory, ...tail]);
}
