/**
 * Element types of weight files and their conversion to and from float32.
 * Every format stores its elements little-endian.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { describeValue } from "../validate.ts";

/** An element type, by its safetensors name. */
export type DType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/**
 * Bytes per element of each {@linkcode DType}.
 *
 * @example
 * ```ts
 * import { DTYPE_SIZE } from "./dtype.ts";
 * console.log(DTYPE_SIZE.BF16); // 2
 * ```
 */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/**
 * Whether `name` is a supported {@linkcode DType}.
 *
 * @param name A dtype name read from a file.
 * @returns `true` when {@linkcode decodeElements} can convert it.
 *
 * @example
 * ```ts
 * import { isDType } from "./dtype.ts";
 * console.log(isDType("F16"), isDType("F8_E4M3")); // true false
 * ```
 */
export function isDType(name: unknown): name is DType {
  return typeof name === "string" && Object.hasOwn(DTYPE_SIZE, name);
}

const scratch = new DataView(new ArrayBuffer(4));

/**
 * Converts IEEE half-precision bits to a number.
 *
 * @param bits The 16 bits of a float16.
 * @returns Its exact value.
 *
 * @example
 * ```ts
 * import { f16ToNumber } from "./dtype.ts";
 * console.log(f16ToNumber(0x3c00)); // 1
 * ```
 */
export function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/**
 * Rounds a float32 value to IEEE half precision (round to nearest even).
 *
 * @param value The value; rounded to float32 first.
 * @returns The 16 bits of the nearest float16 (overflow gives infinity).
 *
 * @example
 * ```ts
 * import { numberToF16 } from "./dtype.ts";
 * console.log(numberToF16(1).toString(16)); // "3c00"
 * ```
 */
export function numberToF16(value: number): number {
  scratch.setFloat32(0, value);
  const x = scratch.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 112; // Rebias 127 -> 15.
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let out = m >>> shift;
    if (rest > half || (rest === half && out & 1)) out++;
    return sign | out;
  }
  const rest = mantissa & 0x1fff;
  let out = (e << 10) | (mantissa >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && out & 1)) out++; // May carry into infinity, as it should.
  return sign | out;
}

/**
 * Rounds a float32 value to bfloat16 (round to nearest even).
 *
 * @param value The value; rounded to float32 first.
 * @returns The 16 bits of the nearest bfloat16.
 *
 * @example
 * ```ts
 * import { numberToBF16 } from "./dtype.ts";
 * console.log(numberToBF16(1).toString(16)); // "3f80"
 * ```
 */
export function numberToBF16(value: number): number {
  scratch.setFloat32(0, value);
  const x = scratch.getUint32(0);
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Converts `count` little-endian elements of type `dtype` starting at
 * `bytes[0]` to float32 (on a little-endian host, as every JavaScript engine
 * this targets is). Float32 input that is 4-byte aligned is returned as a
 * view of `bytes`, not copied.
 *
 * @param bytes The raw elements (at least `count * DTYPE_SIZE[dtype]` bytes).
 * @param dtype Their type.
 * @param count Number of elements.
 * @returns The elements as float32 (int64 beyond 2^53 loses precision).
 *
 * @example
 * ```ts
 * import { decodeElements } from "./dtype.ts";
 * console.log(decodeElements(new Uint8Array([0x00, 0x3c]), "F16", 1)); // Float32Array(1) [1]
 * ```
 */
export function decodeElements(bytes: Uint8Array, dtype: DType, count: number): Float32Array {
  if (dtype === "F32" && bytes.byteOffset % 4 === 0) {
    return new Float32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const out = new Float32Array(count);
  if (dtype === "F16" || dtype === "BF16") {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice(0, count * 2);
    const halves = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
    if (dtype === "BF16") {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
    } else {
      const table = f16Table();
      for (let i = 0; i < count; i++) out[i] = table[halves[i]];
    }
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * DTYPE_SIZE[dtype]);
  const read = READERS[dtype];
  for (let i = 0; i < count; i++) out[i] = read(view, i);
  return out;
}

let F16_TABLE: Float32Array | undefined;

/** Every float16 value as float32, indexed by its bits (built on first use). */
function f16Table(): Float32Array {
  F16_TABLE ??= Float32Array.from({ length: 0x10000 }, (_, bits) => f16ToNumber(bits));
  return F16_TABLE;
}

const READERS: Record<Exclude<DType, "F16" | "BF16">, (view: DataView, i: number) => number> = {
  F64: (v, i) => v.getFloat64(i * 8, true),
  F32: (v, i) => v.getFloat32(i * 4, true),
  I64: (v, i) => Number(v.getBigInt64(i * 8, true)),
  I32: (v, i) => v.getInt32(i * 4, true),
  I16: (v, i) => v.getInt16(i * 2, true),
  I8: (v, i) => v.getInt8(i),
  U8: (v, i) => v.getUint8(i),
  BOOL: (v, i) => (v.getUint8(i) ? 1 : 0),
};

/** The element types the writers produce. */
export type FloatDType = "F64" | "F32" | "F16" | "BF16";

/**
 * Every {@linkcode FloatDType}, for option checks.
 *
 * @example
 * ```ts
 * import { FLOAT_DTYPES } from "./dtype.ts";
 * console.log(FLOAT_DTYPES.includes("F16")); // true
 * ```
 */
export const FLOAT_DTYPES: readonly FloatDType[] = Object.freeze(["F64", "F32", "F16", "BF16"]);

/**
 * Writes `data` little-endian as `dtype` into `out`, rounding to nearest even
 * (F64 is exact).
 *
 * @param data The float32 elements.
 * @param dtype The element type to write.
 * @param out Destination of `data.length * DTYPE_SIZE[dtype]` bytes.
 *
 * @example
 * ```ts
 * import { encodeElements } from "./dtype.ts";
 * const out = new Uint8Array(2);
 * encodeElements(new Float32Array([1]), "BF16", out);
 * console.log(out); // Uint8Array(2) [128, 63]
 * ```
 */
export function encodeElements(data: Float32Array, dtype: FloatDType, out: Uint8Array): void {
  if (dtype === "F32") {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return;
  }
  if (dtype === "F64") {
    const view = new DataView(out.buffer, out.byteOffset, data.length * 8);
    for (let i = 0; i < data.length; i++) view.setFloat64(i * 8, data[i], true);
    return;
  }
  if (dtype !== "F16" && dtype !== "BF16") {
    throw new OptionError(
      `Expected dtype to be "F64", "F32", "F16" or "BF16", got ${describeValue(dtype)}`,
    );
  }
  const view = new DataView(out.buffer, out.byteOffset, data.length * 2);
  const round = dtype === "F16" ? numberToF16 : numberToBF16;
  for (let i = 0; i < data.length; i++) view.setUint16(i * 2, round(data[i]), true);
}
