/**
 * Pillow's 8-bit resampling passes (RGB or grey) on the Wasm SIMD image kernels
 * (`asm/image/resize.ts`), for `resize.ts`: the same windows, weights and
 * rounding as its TypeScript passes, so the same bytes.
 *
 * @module
 */

import { kernelArena, markResident, residentOffset } from "./simd.ts";

/** One pass's filter windows, as `resize.ts` computes them (Pillow's `precompute_coeffs`). */
export interface PassCoefficients {
  /** Per output: first input index (relative to `first`) and tap count. */
  readonly bounds: Int32Array;
  /** `taps` fixed-point weights per output. */
  readonly weights: Int32Array;
  /** Weights per output. */
  readonly taps: number;
  /** Outputs computed. */
  readonly length: number;
  /** The lowest and one past the highest input index read. */
  readonly first: number;
  readonly last: number;
}

/** The image a pass reads: `channels` interleaved samples per pixel, `width` pixels per row. */
export interface PassSource {
  /** The samples, row by row. */
  readonly data: Uint8Array;
  /** Pixels per row. */
  readonly width: number;
  /** Samples per pixel: 1 (grey) or 3 (RGB). */
  readonly channels: 1 | 3;
}

/**
 * One separable pass, as `resize.ts`'s `resamplePass` (same arguments), on
 * the Wasm kernels, copying in only the samples the pass reads; `undefined` when the kernels or the memory are unavailable here.
 *
 * @param src The image read: its samples, row length and channels.
 * @param rowFirst First row read by a horizontal pass.
 * @param rows Rows resampled by a horizontal pass, or rows of `src` (from `c.first`) for a vertical one.
 * @param c The pass's coefficients.
 * @param horizontal Resample rows (true) or columns.
 * @param options `resident`: return a view of the output where the kernels wrote it, marked
 *   resident (valid until the next kernel call: for a pass that reads it at once), not a copy.
 * @returns The pass's output, or `undefined`.
 *
 * @example
 * ```ts
 * import { resamplePassSimd } from "./resample_simd.ts";
 * const c = {
 *   bounds: new Int32Array([0, 2]), weights: new Int32Array([1 << 21, 1 << 21]), taps: 2,
 *   length: 1, first: 0, last: 2,
 * };
 * const src = { data: new Uint8Array([0, 0, 0, 255, 255, 255]), width: 2, channels: 3 as const };
 * console.log(resamplePassSimd(src, 0, 1, c, true)); // Uint8Array(3) [128, 128, 128]
 * ```
 */
export function resamplePassSimd(
  src: PassSource,
  rowFirst: number,
  rows: number,
  c: PassCoefficients,
  horizontal: boolean,
  options: { resident?: boolean } = {},
): Uint8Array | undefined {
  const { data, width, channels } = src;
  // A horizontal pass reads columns c.first..c.last of its rows; a vertical one all of them.
  const inWidth = horizontal ? c.last - c.first : width;
  const outWidth = horizontal ? c.length : width;
  const outRows = horizontal ? rows : c.length;
  // The decoder's output (or a horizontal pass's) may still be in the kernels' memory: read it
  // there. A vertical pass reads all of its rows, from the first.
  const held = residentOffset(data);
  const resident = held?.offset;
  let at = resident === undefined ? 0 : resident + width * (rowFirst + rows) * channels + 16;
  const take = (bytes: number) => {
    const start = at;
    at += Math.ceil((bytes + 16) / 16) * 16; // slack for vector loads
    return start;
  };
  const input = resident === undefined
    ? take(inWidth * rows * channels)
    : resident + (horizontal ? (rowFirst * width + c.first) * channels : 0);
  const stride = resident === undefined ? inWidth * channels : width * channels;
  const output = take(outWidth * outRows * channels);
  const bounds = take(c.bounds.byteLength);
  // The kernels take the weights split into 16-bit halves: as pairs of taps (RGB horizontal,
  // vertical) or groups of eight (grey horizontal).
  const pairs = (c.taps + 1) >> 1;
  const chunks = (c.taps + 7) >> 3;
  const packed = !horizontal
    ? splitWeights(c, pairs, 2, 4, 2, 1)
    : channels === 1
    ? splitWeights(c, chunks, 8, 16, 8, 1)
    : splitWeights(c, pairs, 2, 16, 8, 3);
  const weights = take(packed.byteLength);
  if (at > 2 ** 31) return undefined;
  const arena = kernelArena(at);
  if (!arena) return undefined;
  if (held && arena.memory !== held.memory) {
    // Not the memory that holds it (too large to keep): copy it in after all.
    return resamplePassSimd(src, rowFirst, rows, c, horizontal, options);
  }
  const { memory, kernels } = arena;
  const bytes = new Uint8Array(memory.buffer);
  if (horizontal && resident === undefined) {
    for (let y = 0; y < rows; y++) {
      const from = ((rowFirst + y) * width + c.first) * channels;
      bytes.set(data.subarray(from, from + inWidth * channels), input + y * inWidth * channels);
    }
  } else if (!horizontal && resident === undefined) {
    bytes.set(data.subarray(0, width * rows * channels), input);
  }
  bytes.set(new Uint8Array(c.bounds.buffer, c.bounds.byteOffset, c.bounds.byteLength), bounds);
  bytes.set(new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength), weights);
  if (horizontal && channels === 1) {
    kernels.resample_horizontal_grey(
      input,
      stride,
      rows,
      output,
      outWidth,
      bounds,
      weights,
      chunks,
    );
  } else if (horizontal) {
    kernels.resample_horizontal(input, stride, rows, output, outWidth, bounds, weights, pairs);
  } else {
    kernels.resample_vertical(input, width * channels, output, outRows, bounds, weights, pairs);
  }
  const size = outWidth * outRows * channels;
  if (!options.resident) return bytes.slice(output, output + size);
  const view = bytes.subarray(output, output + size);
  markResident(memory, view, output);
  return view;
}

/**
 * A pass's weights as its kernel loads them, split into 16-bit halves (the
 * kernels sum pixel x half with 16-bit dot products): per output, `groups`
 * blocks of `block` i16, one per `group` taps, tap t of a group at lane t of
 * the high parts (`w >> 11`) and at `low` + t of the low parts (`w & 2047`),
 * repeated `copies` times `group` lanes apart; lanes past the tap count are 0.
 * The RGB horizontal kernel takes pairs of taps, (w[t], w[t + 1]) for R, G and
 * B and two zero lanes, high then low (2, 16, 8, 3); the grey one groups of
 * eight, high then low (8, 16, 8, 1); the vertical one pairs as two i32, high
 * then low (2, 4, 2, 1).
 */
function splitWeights(
  c: PassCoefficients,
  groups: number,
  group: number,
  block: number,
  low: number,
  copies: number,
): Int16Array {
  const out = new Int16Array(c.length * groups * block);
  for (let x = 0; x < c.length; x++) {
    const count = c.bounds[2 * x + 1];
    for (let t = 0; t < count; t++) {
      const w = c.weights[x * c.taps + t];
      const at = (x * groups + Math.floor(t / group)) * block + (t % group);
      for (let copy = 0; copy < copies; copy++) {
        out[at + group * copy] = w >> 11;
        out[at + low + group * copy] = w & 2047;
      }
    }
  }
  return out;
}
