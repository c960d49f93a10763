/**
 * The dropout mask of the Wasm kernel `dropout` (`asm/ops.ts`), computed on
 * the host: xorshift32 is sequential, so the WebGPU backend draws the stream
 * here and the GPU only multiplies. Both backends then drop the same values.
 *
 * @module
 */

/**
 * Fills `dst[offset .. offset + count)` with the multipliers of inverted
 * dropout: 0 where the Wasm kernel zeroes a value, else `1 / (1 - p)` in f32
 * (the Wasm kernel's `keep`). The stream is xorshift32 (13, 17, 5) seeded with
 * `seed | 1`; value i is dropped when the (i+1)-th state is below `p * 2^32`.
 *
 * @param dst Destination.
 * @param offset First float of the mask in `dst`.
 * @param count Values to mask.
 * @param p Drop probability in [0, 1].
 * @param seed The stream's u32 seed.
 *
 * @example
 * ```ts
 * import { dropoutMask } from "./dropout.ts";
 * const mask = new Float32Array(4);
 * dropoutMask(mask, 0, 4, 0.5, 7);
 * console.log(mask.every((m) => m === 0 || m === 2)); // true
 * ```
 */
export function dropoutMask(
  dst: Float32Array,
  offset: number,
  count: number,
  p: number,
  seed: number,
): void {
  const pf = Math.fround(p);
  const keep = Math.fround(1 / Math.fround(1 - pf));
  const threshold = Math.min(Math.floor(pf * 4294967296), 4294967295);
  let s = (seed | 1) >>> 0;
  for (let i = 0; i < count; i++) {
    s = (s ^ (s << 13)) >>> 0;
    s = (s ^ (s >>> 17)) >>> 0;
    s = (s ^ (s << 5)) >>> 0;
    dst[offset + i] = s < threshold ? 0 : keep;
  }
}
