/**
 * TensorBoard's message types, built by protobufjs from tensorboard.proto at first use. The .proto
 * sits beside this module in the sources; scripts/bundle.mjs copies it beside the bundles in dist/
 * (the CLI in dist/, benchmarks one folder below), where this module then runs from.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import textformat from 'protobufjs/ext/textformat.js';

export const PROTO_FILE = 'tensorboard.proto';

export interface TensorBoardTypes {
  Event: protobuf.Type;
  Summary: protobuf.Type;
  TextPluginData: protobuf.Type;
  ProjectorConfig: protobuf.Type;
  /** SessionLog.SessionStatus values by name. */
  sessionStatus: Record<string, number>;
  /** DataType values by name. */
  dataType: Record<string, number>;
  /** DataClass values by name. */
  dataClass: Record<string, number>;
}

/** Where tensorboard.proto is: beside this module (sources), or beside / above the bundle (dist). */
export function protoPath(): string {
  const here = import.meta.url;
  const candidates = [new URL(`./${PROTO_FILE}`, here), new URL(`../${PROTO_FILE}`, here)];
  for (const candidate of candidates) {
    const path = fileURLToPath(candidate);
    if (existsSync(path)) return path;
  }
  throw new Error(`${PROTO_FILE} not found beside ${fileURLToPath(here)} (rebuild with npm run build)`);
}

let types: TensorBoardTypes | undefined;

export function tensorBoardTypes(): TensorBoardTypes {
  if (types) return types;
  // keepCase: the field names stay TensorBoard's (wall_time, simple_value), as in its Python protos.
  const { root } = protobuf.parse(readFileSync(protoPath(), 'utf8'), { keepCase: true });
  const values = (name: string) => root.lookupEnum(name).values;
  types = {
    Event: root.lookupType('tensorboard.Event'),
    Summary: root.lookupType('tensorboard.Summary'),
    TextPluginData: root.lookupType('tensorboard.TextPluginData'),
    ProjectorConfig: root.lookupType('tensorboard.ProjectorConfig'),
    sessionStatus: values('tensorboard.SessionLog.SessionStatus'),
    dataType: values('tensorboard.DataType'),
    dataClass: values('tensorboard.DataClass'),
  };
  return types;
}

/**
 * A message as a plain object: int64 and enums as numbers, bytes as Buffers, the set oneof named, and
 * (with `defaults`) fields at their default present, so that step 0 reads as 0, not as missing.
 */
export function toPlain(type: protobuf.Type, message: protobuf.Message, defaults = true): Record<string, unknown> {
  return type.toObject(message, { longs: Number, bytes: Buffer, oneofs: true, defaults }) as Record<string, unknown>;
}

/** Protobuf text format (what TensorBoard reads projector_config.pbtxt as), through protobufjs. */
export function toTextFormat(type: protobuf.Type, value: Record<string, unknown>): string {
  return textformat.toText(type, type.fromObject(value));
}

export function fromTextFormat(type: protobuf.Type, text: string): Record<string, unknown> {
  return toPlain(type, textformat.fromText(type, text), false);
}
