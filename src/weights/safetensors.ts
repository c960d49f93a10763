/**
 * The safetensors format: an unsigned 64-bit little-endian header length, a
 * JSON header `{name: {dtype, shape, data_offsets: [begin, end]}}` with an
 * optional `__metadata__` string map, then the tensors' bytes, which must
 * cover the data buffer exactly (no holes, no overlaps).
 *
 * @module
 */

import { WeightsFormatError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import {
  decodeElements,
  type DType,
  DTYPE_SIZE,
  encodeElements,
  FLOAT_DTYPES,
  type FloatDType,
  isDType,
} from "./dtype.ts";
import { checkStateDict, type StateDict } from "./state_dict.ts";
import { OptionError } from "../errors.ts";
import { checkEnum, checkInstance, checkOptions, describeValue } from "../validate.ts";

/** The largest JSON header accepted, as in the reference implementation. */
const MAX_HEADER_BYTES = 100_000_000;
/**
 * Most arrays and objects a header may hold (3 per tensor): 100 MB of `[]`
 * would be 50 M arrays, gigabytes of heap, from the JSON parser.
 */
const MAX_HEADER_CONTAINERS = 1_000_000;
const METADATA_KEY = "__metadata__";

/** The contents of a safetensors file. */
export interface Safetensors {
  /** Tensors converted to float32, in the order of their data in the file. */
  tensors: StateDict;
  /** The `__metadata__` map (empty when absent). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String pairs stored as `__metadata__`. */
  metadata?: Record<string, string>;
  /** Element type of every tensor (default `"F32"`); F16 and BF16 round to nearest even, F64 is exact. */
  dtype?: FloatDType;
}

/**
 * Whether `bytes` starts like a safetensors file: a header length under
 * 4 GiB followed by `{`.
 *
 * @param bytes The file.
 * @returns `true` when the header length's high bytes are zero and the header opens a JSON object.
 *
 * @example
 * ```ts
 * import { isSafetensors, writeSafetensors } from "./safetensors.ts";
 * console.log(isSafetensors(writeSafetensors(new Map()))); // true
 * ```
 */
export function isSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 9) return false;
  return bytes[4] === 0 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0 && bytes[8] === 0x7b;
}

/**
 * Parses a safetensors file. F32 data at 4-byte aligned offsets becomes
 * views of `bytes` (not copies); F64, F16, BF16 and integer types are
 * converted to float32.
 *
 * @param bytes The whole file.
 * @returns The tensors and the metadata.
 * @throws {WeightsFormatError} When the file is truncated, its header invalid or its offsets inconsistent.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writeSafetensors(new Map([["w", Tensor.zeros([2, 3])]]));
 * console.log(readSafetensors(file).tensors.get("w")?.shape); // [2, 3]
 * ```
 */
export function readSafetensors(bytes: Uint8Array): Safetensors {
  checkInstance("bytes", bytes, [Uint8Array]);
  if (bytes.length < 8) {
    throw new WeightsFormatError(
      `Truncated safetensors file: expected an 8-byte header length, got ${bytes.length} bytes`,
    );
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new WeightsFormatError(
      `Safetensors header of ${headerLength} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  const dataStart = 8 + Number(headerLength);
  if (dataStart > bytes.length) {
    throw new WeightsFormatError(
      `Truncated safetensors file: header says ${headerLength} bytes of JSON, ` +
        `file has ${bytes.length - 8}`,
    );
  }
  const header = parseHeader(bytes.subarray(8, dataStart));
  const data = bytes.subarray(dataStart);
  const metadata = readMetadata(header[METADATA_KEY]);
  const entries = Object.entries(header)
    .filter(([name]) => name !== METADATA_KEY)
    .map(([name, info]) => readEntry(name, info))
    .sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of entries) {
    if (entry.begin !== covered) {
      throw new WeightsFormatError(
        `Invalid safetensors offsets: tensor "${entry.name}" starts at byte ${entry.begin}, ` +
          `expected ${covered} (no holes or overlaps)`,
      );
    }
    covered = entry.end;
  }
  if (covered !== data.length) {
    throw new WeightsFormatError(
      `Truncated safetensors file: header says ${covered} bytes of tensor data, ` +
        `file has ${data.length}`,
    );
  }
  const tensors: StateDict = new Map();
  for (const { name, dtype, shape, numel, begin, end } of entries) {
    tensors.set(name, new Tensor(decodeElements(data.subarray(begin, end), dtype, numel), shape));
  }
  return { tensors, metadata };
}

/**
 * Encodes tensors as a safetensors file, in the map's order, the header
 * padded with spaces so that the data starts 8-byte aligned.
 *
 * @param tensors The tensors by name.
 * @param options Metadata and the element type to store.
 * @returns The file.
 * @throws {WeightsFormatError} When a tensor is named `__metadata__`.
 * @throws {OptionError} When `tensors` is not a Map of Tensors, `dtype` is not one of F64, F32,
 * F16 or BF16, `metadata` does not map strings to strings, or an option is unknown.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors.ts";
 * import { Tensor } from "../tensor.ts";
 * const file = writeSafetensors(new Map([["b", Tensor.zeros([4])]]), { dtype: "F16" });
 * console.log(file.length % 8); // 0
 * ```
 */
export function writeSafetensors(
  tensors: StateDict,
  options: WriteSafetensorsOptions = {},
): Uint8Array<ArrayBuffer> {
  checkStateDict(tensors);
  const checked = checkOptions("writeSafetensors", options, ["metadata", "dtype"]);
  const dtype = checkEnum("dtype", checked.dtype, FLOAT_DTYPES, { default: "F32" });
  const header: Record<string, unknown> = {};
  if (checked.metadata !== undefined) {
    const metadata = checked.metadata as unknown;
    if (
      typeof metadata !== "object" || metadata === null || Array.isArray(metadata) ||
      Object.values(metadata).some((v) => typeof v !== "string")
    ) {
      throw new OptionError(
        `Expected metadata to map strings to strings, got ${describeValue(metadata)}`,
      );
    }
    header[METADATA_KEY] = { ...metadata };
  }
  let size = 0;
  for (const [name, tensor] of tensors) {
    if (name === METADATA_KEY) {
      throw new WeightsFormatError(`A tensor cannot be named "${METADATA_KEY}" in safetensors`);
    }
    const bytes = tensor.size * DTYPE_SIZE[dtype];
    header[name] = { dtype, shape: tensor.shape, data_offsets: [size, size + bytes] };
    size += bytes;
  }
  const json = JSON.stringify(header);
  const encoded = new TextEncoder().encode(json);
  const padded = new TextEncoder().encode(json + " ".repeat((8 - (encoded.length % 8)) % 8));
  const out = new Uint8Array(8 + padded.length + size);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded.length), true);
  out.set(padded, 8);
  let at = 8 + padded.length;
  for (const tensor of tensors.values()) {
    const bytes = tensor.size * DTYPE_SIZE[dtype];
    encodeElements(tensor.data, dtype, out.subarray(at, at + bytes));
    at += bytes;
  }
  return out;
}

interface Entry {
  name: string;
  dtype: DType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

function parseHeader(json: Uint8Array): Record<string, unknown> {
  let containers = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === 0x5b || c === 0x7b) containers++; // "[" or "{" (in names too: an overestimate)
  }
  if (containers > MAX_HEADER_CONTAINERS) {
    throw new WeightsFormatError(
      `Safetensors header opens ${containers} arrays and objects: expected at most ` +
        `${MAX_HEADER_CONTAINERS} (3 per tensor), refusing a possible memory bomb`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (error) {
    throw new WeightsFormatError(
      `Invalid safetensors header: expected UTF-8 JSON (${(error as Error).message})`,
    );
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new WeightsFormatError("Invalid safetensors header: expected a JSON object");
  }
  return header as Record<string, unknown>;
}

function readMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (
    typeof value !== "object" || Array.isArray(value) ||
    Object.values(value).some((v) => typeof v !== "string")
  ) {
    throw new WeightsFormatError(
      `Invalid safetensors header: "${METADATA_KEY}" must map strings to strings`,
    );
  }
  return { ...value } as Record<string, string>;
}

function readEntry(name: string, info: unknown): Entry {
  const fail = (what: string) =>
    new WeightsFormatError(`Invalid safetensors header for tensor "${name}": ${what}`);
  if (typeof info !== "object" || info === null) throw fail("expected an object");
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (!isDType(dtype)) {
    throw fail(
      `unsupported dtype ${JSON.stringify(dtype)}, expected one of ${
        Object.keys(DTYPE_SIZE).join(", ")
      }`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw fail("expected shape to be an array of non-negative integers");
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
  ) {
    throw fail("expected data_offsets to be [begin, end] with 0 <= begin <= end");
  }
  const [begin, end] = offsets as number[];
  const numel = shape.reduce((a: number, d: number) => a * d, 1);
  if (numel * DTYPE_SIZE[dtype] !== end - begin) {
    throw fail(
      `shape [${shape.join(", ")}] of ${dtype} needs ${numel * DTYPE_SIZE[dtype]} bytes, ` +
        `data_offsets give ${end - begin}`,
    );
  }
  return { name, dtype, shape, numel, begin, end };
}
