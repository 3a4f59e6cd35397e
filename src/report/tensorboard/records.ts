/**
 * TFRecord framing, the container of TensorBoard's event files: each record is
 *
 *   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
 *
 * The CRC32C (Castagnoli) comes from the crc-32 package; the mask (rotate right by 15, add a
 * constant) is TensorFlow's, there so that a CRC computed over data that itself holds CRCs stays
 * well distributed.
 */
import CRC32C from 'crc-32/crc32c.js';

const MASK_DELTA = 0xa282ead8;

/** TensorFlow's masked CRC32C of `data`, as an unsigned 32-bit number. */
export function maskedCrc32c(data: Uint8Array): number {
  const crc = CRC32C.buf(data) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + MASK_DELTA) >>> 0;
}

/** One framed record holding `data`. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(data.byteLength + 16);
  out.writeBigUInt64LE(BigInt(data.byteLength), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.byteLength);
  return out;
}

export interface ReadRecords {
  /** The records whose length and data checksums match. */
  records: Buffer[];
  /** Bytes of the file the records cover; less than its size when the tail is torn or corrupt. */
  validBytes: number;
  /** Why reading stopped before the end of the file; absent when every byte was a good record. */
  problem?: string;
}

/**
 * Splits a TFRecord file into its records, checking both checksums of each. Reading stops at the
 * first record that is incomplete (a writer killed mid-record) or fails a checksum, as TensorBoard's
 * reader does: what comes before is returned.
 */
export function readRecords(file: Uint8Array): ReadRecords {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  const records: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf.length - pos < 12) return { records, validBytes: pos, problem: `torn record header at byte ${pos}` };
    const header = buf.subarray(pos, pos + 8);
    if (buf.readUInt32LE(pos + 8) !== maskedCrc32c(header)) return { records, validBytes: pos, problem: `bad length checksum at byte ${pos}` };
    const length = buf.readBigUInt64LE(pos);
    if (length > BigInt(buf.length - pos - 16)) return { records, validBytes: pos, problem: `torn record at byte ${pos} (${length} bytes announced)` };
    const start = pos + 12;
    const data = buf.subarray(start, start + Number(length));
    if (buf.readUInt32LE(start + data.length) !== maskedCrc32c(data)) return { records, validBytes: pos, problem: `bad data checksum at byte ${pos}` };
    records.push(data);
    pos = start + data.length + 4;
  }
  return { records, validBytes: pos };
}
