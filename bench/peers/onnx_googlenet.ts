/**
 * Builds the seed GoogLeNet as an ONNX model (opset 13) from a state dict, in
 * TypeScript, with a minimal protobuf encoder for the few messages needed:
 * ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto and
 * ValueInfoProto (field numbers from `onnx/onnx.proto`). The input `input` is
 * `[N, 3, 224, 224]` float32 with a symbolic batch `N`; the output `logits`
 * is `[N, 1000]`.
 *
 * @module
 */

import type { Tensor } from "../../src/tensor.ts";
import {
  type ConvSpec,
  SEED_CLASSES,
  SEED_FEATURES,
  SEED_INPUT_SIZE,
  SEED_STAGES,
  stateDictEntry,
} from "./seed_architecture.ts";

/** Name of the model's input. */
export const ONNX_INPUT = "input";
/** Name of the model's output. */
export const ONNX_OUTPUT = "logits";

const OPSET = 13;
const IR_VERSION = 8;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_INT = 2; // AttributeProto.AttributeType.INT
const ATTR_INTS = 7; // AttributeProto.AttributeType.INTS

/** Appends protobuf fields (proto2, unpacked repeated scalars) to a byte list. */
class ProtoWriter {
  #chunks: Uint8Array[] = [];
  #length = 0;

  #push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  #varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Cannot encode ${value} as a non-negative varint`);
    }
    const bytes: number[] = [];
    while (value >= 0x80) {
      bytes.push((value % 0x80) | 0x80);
      value = Math.floor(value / 0x80);
    }
    bytes.push(value);
    this.#push(Uint8Array.from(bytes));
  }

  /** A varint field (wire type 0): int32, int64, enum. */
  int(field: number, value: number): this {
    this.#varint(field * 8);
    this.#varint(value);
    return this;
  }

  /** A length-delimited field (wire type 2) holding raw bytes. */
  bytes(field: number, value: Uint8Array): this {
    this.#varint(field * 8 + 2);
    this.#varint(value.length);
    this.#push(value);
    return this;
  }

  /** A string field, UTF-8. */
  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** An embedded message field. */
  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  /** The encoded fields. */
  finish(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

type Attribute = readonly [name: string, value: number | readonly number[]];

/** AttributeProto: name = 1, i = 3, ints = 8, type = 20. */
function attribute([name, value]: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === "number") return w.int(3, value).int(20, ATTR_INT);
  for (const v of value) w.int(8, v);
  return w.int(20, ATTR_INTS);
}

/** NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5. */
function node(
  opType: string,
  inputs: readonly string[],
  output: string,
  attributes: readonly Attribute[] = [],
): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of inputs) w.string(1, i);
  w.string(2, output).string(3, output).string(4, opType);
  for (const a of attributes) w.message(5, attribute(a));
  return w;
}

/** TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9 (little-endian). */
function initializer(name: string, t: Tensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.shape) w.int(1, d);
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return w.int(2, FLOAT).string(8, name).bytes(9, raw.slice());
}

/**
 * ValueInfoProto (name = 1, type = 2) of a float tensor; TypeProto.tensor_type = 1,
 * Tensor.elem_type = 1, shape = 2, Dimension.dim_value = 1, dim_param = 2.
 */
function valueInfo(name: string, dims: readonly (number | string)[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    shape.message(
      1,
      typeof d === "number" ? new ProtoWriter().int(1, d) : new ProtoWriter().string(2, d),
    );
  }
  const tensorType = new ProtoWriter().int(1, FLOAT).message(2, shape);
  return new ProtoWriter().string(1, name).message(2, new ProtoWriter().message(1, tensorType));
}

/**
 * Builds the seed GoogLeNet (eval mode, no aux heads) as ONNX model bytes:
 * Conv (+bias) and Relu for each `BasicConv2d`; MaxPool with ceil_mode = 1
 * (no padding, stride 2) between stages and with padding 1, stride 1 in each
 * Inception's branch4; Concat along channels; GlobalAveragePool (=
 * AdaptiveAvgPool2d(1)); Flatten; Gemm with transB = 1 (dropout is the
 * identity in eval mode). The weights are stored as initializers.
 *
 * @param stateDict The reference's state dict (PyTorch key names and layouts,
 *   e.g. from `deterministicStateDict(seedStateDictShapes())`).
 * @returns The serialised ModelProto.
 * @throws {StateDictError} When a key is missing or has the wrong shape.
 *
 * @example
 * ```ts
 * import { buildOnnxGoogLeNet } from "./onnx_googlenet.ts";
 * import { seedStateDictShapes } from "./seed_architecture.ts";
 * import { deterministicStateDict } from "../../tools/deterministic.ts";
 * const bytes = buildOnnxGoogLeNet(deterministicStateDict(seedStateDictShapes()));
 * console.log(bytes.length > 27_000_000); // true
 * ```
 */
export function buildOnnxGoogLeNet(
  stateDict: ReadonlyMap<string, Tensor>,
): Uint8Array<ArrayBuffer> {
  const graph = new ProtoWriter();
  const initializers: ProtoWriter[] = [];

  const weight = (key: string, shape: readonly number[]): string => {
    initializers.push(initializer(key, stateDictEntry(stateDict, key, shape)));
    return key;
  };
  const convRelu = (x: string, c: ConvSpec): string => {
    const w = weight(`${c.key}.weight`, [c.outChannels, c.inChannels, c.kernel, c.kernel]);
    const b = weight(`${c.key}.bias`, [c.outChannels]);
    const p = c.padding;
    graph.message(
      1,
      node("Conv", [x, w, b], c.key, [
        ["kernel_shape", [c.kernel, c.kernel]],
        ["strides", [c.stride, c.stride]],
        ["pads", [p, p, p, p]],
      ]),
    );
    graph.message(1, node("Relu", [c.key], `${c.key}.relu`));
    return `${c.key}.relu`;
  };
  const maxPool = (x: string, output: string, stride: number, pad: number): string => {
    graph.message(
      1,
      node("MaxPool", [x], output, [
        ["kernel_shape", [3, 3]],
        ["strides", [stride, stride]],
        ["pads", [pad, pad, pad, pad]],
        ["ceil_mode", stride === 1 ? 0 : 1],
      ]),
    );
    return output;
  };

  let x = ONNX_INPUT;
  let pools = 0;
  for (const stage of SEED_STAGES) {
    if (stage.kind === "conv") {
      x = convRelu(x, stage.conv);
    } else if (stage.kind === "maxpool") {
      x = maxPool(x, `maxpool${++pools}`, 2, 0);
    } else {
      const { name, convBranches, poolProjection } = stage.block;
      const branches = convBranches.map((convs) => convs.reduce(convRelu, x));
      branches.push(convRelu(maxPool(x, `${name}.branch4.0`, 1, 1), poolProjection));
      graph.message(1, node("Concat", branches, name, [["axis", 1]]));
      x = name;
    }
  }
  graph.message(1, node("GlobalAveragePool", [x], "avgpool"));
  graph.message(1, node("Flatten", ["avgpool"], "flatten", [["axis", 1]]));
  const fcW = weight("fc.weight", [SEED_CLASSES, SEED_FEATURES]);
  const fcB = weight("fc.bias", [SEED_CLASSES]);
  graph.message(1, node("Gemm", ["flatten", fcW, fcB], ONNX_OUTPUT, [["transB", 1]]));

  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
  graph.string(2, "googlenet_seed");
  for (const i of initializers) graph.message(5, i);
  graph.message(11, valueInfo(ONNX_INPUT, ["N", 3, SEED_INPUT_SIZE, SEED_INPUT_SIZE]));
  graph.message(12, valueInfo(ONNX_OUTPUT, ["N", SEED_CLASSES]));

  // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8
  // (OperatorSetIdProto: domain = 1, version = 2; the default domain is "").
  return new ProtoWriter()
    .int(1, IR_VERSION)
    .string(2, "googlenet-wasm bench/peers")
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, "").int(2, OPSET))
    .finish();
}
