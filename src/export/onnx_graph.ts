/**
 * A small builder for ONNX graphs on top of the `onnx-proto` package (ONNX's own protobuf schema,
 * compiled for protobufjs): nodes, float32/int64 initializers, typed inputs and outputs, model
 * metadata, and the encoded model bytes. It knows nothing about networks; src/export/onnx_encoder.ts
 * describes the encoder with it, and a later head (a linear probe: Gemm + Softmax after a feature
 * standardisation) appends its nodes to the same graph.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

/** The operator set simtrip writes: ONNX 1.12 (Debian's python3-onnx) checks it; every runtime since 2022 runs it. */
export const ONNX_OPSET = 17;
/** IR version 8 goes with opset 17 (ONNX 1.12). */
const IR_VERSION = 8;

export type OnnxAttribute =
  | { readonly int: number }
  | { readonly ints: readonly number[] }
  | { readonly float: number }
  | { readonly floats: readonly number[] }
  | { readonly string: string };

/** A dimension: a fixed size, or a symbolic name (e.g. "batch") for a dynamic one. */
export type OnnxDim = number | string;

function attribute(name: string, a: OnnxAttribute): InstanceType<typeof onnx.AttributeProto> {
  const T = onnx.AttributeProto.AttributeType;
  if ('int' in a) return onnx.AttributeProto.create({ name, type: T.INT, i: a.int });
  if ('ints' in a) return onnx.AttributeProto.create({ name, type: T.INTS, ints: [...a.ints] });
  if ('float' in a) return onnx.AttributeProto.create({ name, type: T.FLOAT, f: a.float });
  if ('floats' in a) return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: [...a.floats] });
  return onnx.AttributeProto.create({ name, type: T.STRING, s: Buffer.from(a.string, 'utf8') });
}

function valueInfo(name: string, dims: readonly OnnxDim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: onnx.TensorShapeProto.create({
          dim: dims.map((d) => onnx.TensorShapeProto.Dimension.create(typeof d === 'number' ? { dimValue: d } : { dimParam: d })),
        }),
      }),
    }),
  });
}

function bytesOf(data: Float32Array | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export interface OnnxModelInfo {
  /** A sentence or two on what the model computes. */
  readonly docString: string;
  readonly producerVersion: string;
  /** Key/value strings any ONNX reader can list (onnxruntime: session metadata's customMetadataMap). */
  readonly metadata: Readonly<Record<string, string>>;
}

export class OnnxGraph {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly used = new Set<string>();

  constructor(readonly name: string) {}

  /** `base`, or `base_2`, `base_3`, ... when taken: every value and node name is unique. */
  unique(base: string): string {
    let name = base;
    for (let i = 2; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  input(name: string, dims: readonly OnnxDim[]): string {
    const unique = this.unique(name);
    this.inputs.push(valueInfo(unique, dims));
    return unique;
  }

  /** Declares an existing value as a graph output. */
  output(name: string, dims: readonly OnnxDim[]): void {
    this.outputs.push(valueInfo(name, dims));
  }

  /** A constant tensor (float32, or int64 for shapes and pads), stored as raw little-endian data. */
  initializer(name: string, dims: readonly number[], data: Float32Array | BigInt64Array): string {
    const size = dims.reduce((n, d) => n * d, 1);
    if (size !== data.length) throw new RangeError(`initializer ${name}: dims [${dims.join(', ')}] do not hold ${data.length} values`);
    const unique = this.unique(name);
    const dataType = data instanceof Float32Array ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64;
    this.initializers.push(onnx.TensorProto.create({ name: unique, dims: [...dims], dataType, rawData: bytesOf(data) }));
    return unique;
  }

  /** An int64 constant, e.g. a Reshape's target shape. */
  ints(name: string, values: readonly number[]): string {
    return this.initializer(name, [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** Adds an operator node; its one output value has the node's name, which is returned. Inputs may be '' for an omitted optional input. */
  node(op: string, name: string, inputs: readonly string[], attributes: Readonly<Record<string, OnnxAttribute>> = {}): string {
    const nodeName = this.unique(name);
    this.nodes.push(
      onnx.NodeProto.create({
        name: nodeName,
        opType: op,
        input: [...inputs],
        output: [nodeName],
        attribute: Object.entries(attributes).map(([k, v]) => attribute(k, v)),
      }),
    );
    return nodeName;
  }

  /** The model file: the graph, the opset, and the metadata. */
  encode(info: OnnxModelInfo): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: ONNX_OPSET })],
      producerName: 'simtrip',
      producerVersion: info.producerVersion,
      docString: info.docString,
      graph: onnx.GraphProto.create({
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      }),
      metadataProps: Object.entries(info.metadata).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    });
    return onnx.ModelProto.encode(model).finish();
  }
}
