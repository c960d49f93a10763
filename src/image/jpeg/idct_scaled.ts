/**
 * libjpeg's reduced-size inverse DCTs (`jidctred.c`): 4x4, 2x2 and 1x1
 * samples straight from an 8x8 coefficient block, for decoding at 1/2, 1/4
 * and 1/8 scale (libjpeg's `scale_denom`, Pillow's `draft()`). Outputs are
 * clamped to 0-255.
 *
 * @module
 */

const CONST_BITS = 13;
const PASS1_BITS = 2;
const FIX_0_211164243 = 1730;
const FIX_0_509795579 = 4176;
const FIX_0_601344887 = 4926;
const FIX_0_720959822 = 5906;
const FIX_0_765366865 = 6270;
const FIX_0_850430095 = 6967;
const FIX_0_899976223 = 7373;
const FIX_1_061594337 = 8697;
const FIX_1_272758580 = 10426;
const FIX_1_451774981 = 11893;
const FIX_1_847759065 = 15137;
const FIX_2_172734803 = 17799;
const FIX_2_562915447 = 20995;
const FIX_3_624509785 = 29692;

const ws = new Int32Array(64);

function descale(x: number, n: number): number {
  const v = ((x + (1 << (n - 1))) >> n) + 128;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Inverse-transforms one block into `size` x `size` samples (size 4, 2 or 1)
 * with libjpeg's `jpeg_idct_4x4`, `jpeg_idct_2x2` or `jpeg_idct_1x1`.
 *
 * @param size Output side: 4, 2 or 1.
 * @param coefficients Coefficient blocks, 64 each in natural order.
 * @param offset Index of the block's first coefficient.
 * @param quant The component's quantisation table, natural order.
 * @param out The sample plane.
 * @param outOffset Index of the block's top-left sample in `out`.
 * @param stride Samples per row of `out`.
 *
 * @example
 * ```ts
 * import { idctScaled } from "./idct_scaled.ts";
 * const block = new Int16Array(64);
 * block[0] = 10;
 * const out = new Uint8Array(16);
 * idctScaled(4, block, 0, new Uint16Array(64).fill(8), out, 0, 4);
 * console.log(out[0], out[15]); // 138 138
 * ```
 */
export function idctScaled(
  size: number,
  coefficients: Int16Array,
  offset: number,
  quant: Uint16Array,
  out: Uint8Array,
  outOffset: number,
  stride: number,
): void {
  const c = coefficients;
  if (size === 1) {
    out[outOffset] = descale(c[offset] * quant[0], 3);
    return;
  }
  if (size === 4) {
    for (let col = 0; col < 8; col++) {
      if (col === 4) continue;
      const i = offset + col;
      if ((c[i + 8] | c[i + 16] | c[i + 24] | c[i + 40] | c[i + 48] | c[i + 56]) === 0) {
        const dc = (c[i] * quant[col]) << PASS1_BITS;
        ws[col] =
          ws[col + 8] =
          ws[col + 16] =
          ws[col + 24] =
            dc;
        continue;
      }
      const tmp0 = c[i] * quant[col] * (1 << (CONST_BITS + 1));
      const tmp2 = c[i + 16] * quant[col + 16] * FIX_1_847759065 -
        c[i + 48] * quant[col + 48] * FIX_0_765366865;
      const tmp10 = tmp0 + tmp2;
      const tmp12 = tmp0 - tmp2;
      const z1 = c[i + 56] * quant[col + 56];
      const z2 = c[i + 40] * quant[col + 40];
      const z3 = c[i + 24] * quant[col + 24];
      const z4 = c[i + 8] * quant[col + 8];
      const odd0 = -z1 * FIX_0_211164243 + z2 * FIX_1_451774981 - z3 * FIX_2_172734803 +
        z4 * FIX_1_061594337;
      const odd2 = -z1 * FIX_0_509795579 - z2 * FIX_0_601344887 + z3 * FIX_0_899976223 +
        z4 * FIX_2_562915447;
      const n = CONST_BITS - PASS1_BITS + 1;
      ws[col] = (tmp10 + odd2 + (1 << (n - 1))) >> n;
      ws[col + 24] = (tmp10 - odd2 + (1 << (n - 1))) >> n;
      ws[col + 8] = (tmp12 + odd0 + (1 << (n - 1))) >> n;
      ws[col + 16] = (tmp12 - odd0 + (1 << (n - 1))) >> n;
    }
    for (let row = 0, o = outOffset; row < 32; row += 8, o += stride) {
      if (
        (ws[row + 1] | ws[row + 2] | ws[row + 3] | ws[row + 5] | ws[row + 6] | ws[row + 7]) === 0
      ) {
        out[o] =
          out[o + 1] =
          out[o + 2] =
          out[o + 3] =
            descale(ws[row], PASS1_BITS + 3);
        continue;
      }
      const tmp0 = ws[row] * (1 << (CONST_BITS + 1));
      const tmp2 = ws[row + 2] * FIX_1_847759065 - ws[row + 6] * FIX_0_765366865;
      const tmp10 = tmp0 + tmp2;
      const tmp12 = tmp0 - tmp2;
      const z1 = ws[row + 7];
      const z2 = ws[row + 5];
      const z3 = ws[row + 3];
      const z4 = ws[row + 1];
      const odd0 = -z1 * FIX_0_211164243 + z2 * FIX_1_451774981 - z3 * FIX_2_172734803 +
        z4 * FIX_1_061594337;
      const odd2 = -z1 * FIX_0_509795579 - z2 * FIX_0_601344887 + z3 * FIX_0_899976223 +
        z4 * FIX_2_562915447;
      const n = CONST_BITS + PASS1_BITS + 3 + 1;
      out[o] = descale(tmp10 + odd2, n);
      out[o + 3] = descale(tmp10 - odd2, n);
      out[o + 1] = descale(tmp12 + odd0, n);
      out[o + 2] = descale(tmp12 - odd0, n);
    }
    return;
  }
  // size 2
  for (let col = 0; col < 8; col++) {
    if (col === 2 || col === 4 || col === 6) continue;
    const i = offset + col;
    if ((c[i + 8] | c[i + 24] | c[i + 40] | c[i + 56]) === 0) {
      ws[col] = ws[col + 8] = (c[i] * quant[col]) << PASS1_BITS;
      continue;
    }
    const tmp10 = c[i] * quant[col] * (1 << (CONST_BITS + 2));
    const tmp0 = -c[i + 56] * quant[col + 56] * FIX_0_720959822 +
      c[i + 40] * quant[col + 40] * FIX_0_850430095 -
      c[i + 24] * quant[col + 24] * FIX_1_272758580 +
      c[i + 8] * quant[col + 8] * FIX_3_624509785;
    const n = CONST_BITS - PASS1_BITS + 2;
    ws[col] = (tmp10 + tmp0 + (1 << (n - 1))) >> n;
    ws[col + 8] = (tmp10 - tmp0 + (1 << (n - 1))) >> n;
  }
  for (let row = 0, o = outOffset; row < 16; row += 8, o += stride) {
    if ((ws[row + 1] | ws[row + 3] | ws[row + 5] | ws[row + 7]) === 0) {
      out[o] = out[o + 1] = descale(ws[row], PASS1_BITS + 3);
      continue;
    }
    const tmp10 = ws[row] * (1 << (CONST_BITS + 2));
    const tmp0 = -ws[row + 7] * FIX_0_720959822 + ws[row + 5] * FIX_0_850430095 -
      ws[row + 3] * FIX_1_272758580 + ws[row + 1] * FIX_3_624509785;
    const n = CONST_BITS + PASS1_BITS + 3 + 2;
    out[o] = descale(tmp10 + tmp0, n);
    out[o + 1] = descale(tmp10 - tmp0, n);
  }
}
