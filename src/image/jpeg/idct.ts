/**
 * libjpeg's accurate integer inverse DCT ("islow", `jidctint.c`): the
 * Loeffler-Ligtenberg-Moschytz factorisation in 13-bit fixed point with two
 * extra bits between the passes, dequantisation folded into the first pass.
 *
 * The results equal libjpeg-turbo's C and SIMD versions, which agree with
 * each other, for every input whose intermediate values fit 16 bits (all
 * real images); outputs are clamped to 0-255 as the SIMD versions do. On
 * any input they equal this project's SIMD kernel (`asm/image/jpeg.ts`):
 * both wrap at 32 bits the same way.
 *
 * @module
 */

const CONST_BITS = 13;
const PASS1_BITS = 2;
const FIX_0_298631336 = 2446;
const FIX_0_390180644 = 3196;
const FIX_0_541196100 = 4433;
const FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373;
const FIX_1_175875602 = 9633;
const FIX_1_501321110 = 12299;
const FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069;
const FIX_2_053119869 = 16819;
const FIX_2_562915447 = 20995;
const FIX_3_072711026 = 25172;

const PASS1_ROUND = 1 << (CONST_BITS - PASS1_BITS - 1);
const PASS1_SHIFT = CONST_BITS - PASS1_BITS;
const PASS2_SHIFT = CONST_BITS + PASS1_BITS + 3;
/** Rounding for the second pass plus the level shift (128) in its fixed point. */
const PASS2_ROUND = (1 << (PASS2_SHIFT - 1)) + (128 << PASS2_SHIFT);

const workspace = new Int32Array(64);

/**
 * Inverse-transforms one 8x8 block of quantised coefficients into 8-bit
 * samples.
 *
 * @param coefficients Coefficient blocks, 64 each in natural order.
 * @param offset Index of the block's first coefficient.
 * @param quant The component's quantisation table, natural order.
 * @param out The sample plane.
 * @param outOffset Index of the block's top-left sample in `out`.
 * @param stride Samples per row of `out`.
 *
 * @example
 * ```ts
 * import { idctIslow } from "./idct.ts";
 * const block = new Int16Array(64);
 * block[0] = 10; // DC only: every sample is 128 + 10 * 8 / 8
 * const quant = new Uint16Array(64).fill(8);
 * const out = new Uint8Array(64);
 * idctIslow(block, 0, quant, out, 0, 8);
 * console.log(out[0], out[63]); // 138 138
 * ```
 */
export function idctIslow(
  coefficients: Int16Array,
  offset: number,
  quant: Uint16Array,
  out: Uint8Array,
  outOffset: number,
  stride: number,
): void {
  const ws = workspace;
  for (let col = 0; col < 8; col++) {
    const i = offset + col;
    const c1 = coefficients[i + 8];
    const c2 = coefficients[i + 16];
    const c3 = coefficients[i + 24];
    const c4 = coefficients[i + 32];
    const c5 = coefficients[i + 40];
    const c6 = coefficients[i + 48];
    const c7 = coefficients[i + 56];
    // No shortcut for all-zero AC columns (jidctint.c has one): it gives the
    // same values unless the products overflow 32 bits, and the SIMD kernel
    // (like libjpeg-turbo's) has none, so both paths agree on any input.
    // Even part.
    let z2 = c2 * quant[col + 16];
    let z3 = c6 * quant[col + 48];
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = coefficients[i] * quant[col];
    z3 = c4 * quant[col + 32];
    let tmp0 = (z2 + z3) << CONST_BITS;
    let tmp1 = (z2 - z3) << CONST_BITS;
    const tmp10 = tmp0 + tmp3;
    const tmp13 = tmp0 - tmp3;
    const tmp11 = tmp1 + tmp2;
    const tmp12 = tmp1 - tmp2;
    // Odd part.
    tmp0 = c7 * quant[col + 56];
    tmp1 = c5 * quant[col + 40];
    tmp2 = c3 * quant[col + 24];
    tmp3 = c1 * quant[col + 8];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    ws[col] = (tmp10 + tmp3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 56] = (tmp10 - tmp3 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 8] = (tmp11 + tmp2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 48] = (tmp11 - tmp2 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 16] = (tmp12 + tmp1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 40] = (tmp12 - tmp1 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 24] = (tmp13 + tmp0 + PASS1_ROUND) >> PASS1_SHIFT;
    ws[col + 32] = (tmp13 - tmp0 + PASS1_ROUND) >> PASS1_SHIFT;
  }
  for (let row = 0, o = outOffset; row < 64; row += 8, o += stride) {
    // The row shortcut of jidctint.c gives the same values as the full pass.
    let z2 = ws[row + 2];
    let z3 = ws[row + 6];
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 - z3 * FIX_1_847759065;
    let tmp3 = z1 + z2 * FIX_0_765366865;
    let tmp0 = (ws[row] + ws[row + 4]) << CONST_BITS;
    let tmp1 = (ws[row] - ws[row + 4]) << CONST_BITS;
    const tmp10 = tmp0 + tmp3 + PASS2_ROUND;
    const tmp13 = tmp0 - tmp3 + PASS2_ROUND;
    const tmp11 = tmp1 + tmp2 + PASS2_ROUND;
    const tmp12 = tmp1 - tmp2 + PASS2_ROUND;
    tmp0 = ws[row + 7];
    tmp1 = ws[row + 5];
    tmp2 = ws[row + 3];
    tmp3 = ws[row + 1];
    z1 = tmp0 + tmp3;
    z2 = tmp1 + tmp2;
    z3 = tmp0 + tmp2;
    let z4 = tmp1 + tmp3;
    const z5 = (z3 + z4) * FIX_1_175875602;
    tmp0 *= FIX_0_298631336;
    tmp1 *= FIX_2_053119869;
    tmp2 *= FIX_3_072711026;
    tmp3 *= FIX_1_501321110;
    z1 *= -FIX_0_899976223;
    z2 *= -FIX_2_562915447;
    z3 = z3 * -FIX_1_961570560 + z5;
    z4 = z4 * -FIX_0_390180644 + z5;
    tmp0 += z1 + z3;
    tmp1 += z2 + z4;
    tmp2 += z2 + z3;
    tmp3 += z1 + z4;
    out[o] = clamp((tmp10 + tmp3) >> PASS2_SHIFT);
    out[o + 7] = clamp((tmp10 - tmp3) >> PASS2_SHIFT);
    out[o + 1] = clamp((tmp11 + tmp2) >> PASS2_SHIFT);
    out[o + 6] = clamp((tmp11 - tmp2) >> PASS2_SHIFT);
    out[o + 2] = clamp((tmp12 + tmp1) >> PASS2_SHIFT);
    out[o + 5] = clamp((tmp12 - tmp1) >> PASS2_SHIFT);
    out[o + 3] = clamp((tmp13 + tmp0) >> PASS2_SHIFT);
    out[o + 4] = clamp((tmp13 - tmp0) >> PASS2_SHIFT);
  }
}

function clamp(x: number): number {
  return x < 0 ? 0 : x > 255 ? 255 : x;
}
