// libjpeg's reduced-size inverse DCTs (jidctred.c: jpeg_idct_4x4, 2x2, 1x1)
// over a component's blocks, for decoding at 1/2, 1/4 and 1/8 scale: a port
// of src/image/jpeg/idct_scaled.ts with the same shortcuts (as per-lane
// selects in the SIMD passes). i32 arithmetic
// wraps as the TypeScript path's ToInt32 before each shift does, so both
// give the same bytes even for hostile coefficients.

const CONST_BITS: i32 = 13;
const PASS1_BITS: i32 = 2;
const FIX_0_211164243: i32 = 1730;
const FIX_0_509795579: i32 = 4176;
const FIX_0_601344887: i32 = 4926;
const FIX_0_720959822: i32 = 5906;
const FIX_0_765366865: i32 = 6270;
const FIX_0_850430095: i32 = 6967;
const FIX_0_899976223: i32 = 7373;
const FIX_1_061594337: i32 = 8697;
const FIX_1_272758580: i32 = 10426;
const FIX_1_451774981: i32 = 11893;
const FIX_1_847759065: i32 = 15137;
const FIX_2_172734803: i32 = 17799;
const FIX_2_562915447: i32 = 20995;
const FIX_3_624509785: i32 = 29692;

@inline function descale(x: i32, n: i32): i32 {
  const v = ((x + (1 << (n - 1))) >> n) + 128;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

@inline function mulc(v: v128, c: i32): v128 {
  return i32x4.mul(v, i32x4.splat(c));
}

// One half (four columns, `half` 0 or 1) of a block's row `r`, dequantised.
@inline function row(rows: v128, quant: usize, r: i32, half: i32): v128 {
  const c = half == 0 ? i32x4.extend_low_i16x8_s(rows) : i32x4.extend_high_i16x8_s(rows);
  return i32x4.mul(c, v128.load(quant + <usize>(r * 32 + half * 16)));
}

// One half of a block's row times the matching half of row `k` of `pre`.
@inline function term(rows: v128, pre: usize, k: i32, half: i32): v128 {
  const c = half == 0 ? i32x4.extend_low_i16x8_s(rows) : i32x4.extend_high_i16x8_s(rows);
  return i32x4.mul(c, v128.load(pre + <usize>(k * 32 + half * 16)));
}

// Lanes where the i16 rows OR-ed in `any` are zero, as i32 masks of one half.
@inline function zeroMask(any: v128, half: i32): v128 {
  const z = i16x8.eq(any, i16x8.splat(0));
  return half == 0 ? i32x4.extend_low_i16x8_s(z) : i32x4.extend_high_i16x8_s(z);
}

// jpeg_idct_4x4 of one block into 4x4 samples at `o`: pass 1 with four
// columns in the lanes (each lane takes the DC shortcut where its column's
// used AC terms are zero, as the scalar code branches), pass 2 with the four
// rows in the lanes. `ws` holds 32 i32.
function idct4(block: usize, quant: usize, o: usize, stride: usize, ws: usize): void {
  const r0 = v128.load(block, 0);
  const r1 = v128.load(block, 16);
  const r2 = v128.load(block, 32);
  const r3 = v128.load(block, 48);
  const r5 = v128.load(block, 80);
  const r6 = v128.load(block, 96);
  const r7 = v128.load(block, 112);
  const any = v128.or(v128.or(v128.or(r1, r2), v128.or(r3, r5)), v128.or(r6, r7));
  const n1 = CONST_BITS - PASS1_BITS + 1;
  const round1 = i32x4.splat(1 << (n1 - 1));
  for (let half = 0; half < 2; half++) {
    const x0 = row(r0, quant, 0, half);
    const short = i32x4.shl(x0, PASS1_BITS);
    const mask = zeroMask(any, half);
    const tmp0 = i32x4.shl(x0, CONST_BITS + 1);
    const tmp2 = i32x4.sub(
      mulc(row(r2, quant, 2, half), FIX_1_847759065),
      mulc(row(r6, quant, 6, half), FIX_0_765366865),
    );
    const tmp10 = i32x4.add(i32x4.add(tmp0, tmp2), round1);
    const tmp12 = i32x4.add(i32x4.sub(tmp0, tmp2), round1);
    const z1 = row(r7, quant, 7, half);
    const z2 = row(r5, quant, 5, half);
    const z3 = row(r3, quant, 3, half);
    const z4 = row(r1, quant, 1, half);
    const odd0 = i32x4.add(
      i32x4.sub(mulc(z2, FIX_1_451774981), mulc(z1, FIX_0_211164243)),
      i32x4.sub(mulc(z4, FIX_1_061594337), mulc(z3, FIX_2_172734803)),
    );
    const odd2 = i32x4.add(
      i32x4.sub(mulc(z3, FIX_0_899976223), i32x4.add(mulc(z1, FIX_0_509795579), mulc(z2, FIX_0_601344887))),
      mulc(z4, FIX_2_562915447),
    );
    const w = ws + <usize>(half * 16);
    v128.store(w, v128.bitselect(short, i32x4.shr_s(i32x4.add(tmp10, odd2), n1), mask), 0);
    v128.store(w, v128.bitselect(short, i32x4.shr_s(i32x4.add(tmp12, odd0), n1), mask), 32);
    v128.store(w, v128.bitselect(short, i32x4.shr_s(i32x4.sub(tmp12, odd0), n1), mask), 64);
    v128.store(w, v128.bitselect(short, i32x4.shr_s(i32x4.sub(tmp10, odd2), n1), mask), 96);
  }
  // Transpose the 4x8 workspace: y[k] = column k over rows 0-3.
  const a0 = v128.load(ws, 0);
  const a1 = v128.load(ws, 32);
  const a2 = v128.load(ws, 64);
  const a3 = v128.load(ws, 96);
  const b0 = v128.load(ws, 16);
  const b1 = v128.load(ws, 48);
  const b2 = v128.load(ws, 80);
  const b3 = v128.load(ws, 112);
  let t0 = v128.shuffle<i32>(a0, a1, 0, 4, 1, 5);
  let t1 = v128.shuffle<i32>(a0, a1, 2, 6, 3, 7);
  let t2 = v128.shuffle<i32>(a2, a3, 0, 4, 1, 5);
  let t3 = v128.shuffle<i32>(a2, a3, 2, 6, 3, 7);
  const y0 = v128.shuffle<i64>(t0, t2, 0, 2);
  const y1 = v128.shuffle<i64>(t0, t2, 1, 3);
  const y2 = v128.shuffle<i64>(t1, t3, 0, 2);
  const y3 = v128.shuffle<i64>(t1, t3, 1, 3);
  t0 = v128.shuffle<i32>(b0, b1, 0, 4, 1, 5);
  t1 = v128.shuffle<i32>(b0, b1, 2, 6, 3, 7);
  t2 = v128.shuffle<i32>(b2, b3, 0, 4, 1, 5);
  t3 = v128.shuffle<i32>(b2, b3, 2, 6, 3, 7);
  const y5 = v128.shuffle<i64>(t0, t2, 1, 3);
  const y6 = v128.shuffle<i64>(t1, t3, 0, 2);
  const y7 = v128.shuffle<i64>(t1, t3, 1, 3);
  const mask = i32x4.eq(
    v128.or(v128.or(v128.or(y1, y2), v128.or(y3, y5)), v128.or(y6, y7)),
    i32x4.splat(0),
  );
  const level = i32x4.splat(128);
  const short = i32x4.add(
    i32x4.shr_s(i32x4.add(y0, i32x4.splat(1 << (PASS1_BITS + 2))), PASS1_BITS + 3),
    level,
  );
  const n2 = CONST_BITS + PASS1_BITS + 3 + 1;
  const round2 = i32x4.splat(1 << (n2 - 1));
  const tmp0 = i32x4.shl(y0, CONST_BITS + 1);
  const tmp2 = i32x4.sub(mulc(y2, FIX_1_847759065), mulc(y6, FIX_0_765366865));
  const tmp10 = i32x4.add(i32x4.add(tmp0, tmp2), round2);
  const tmp12 = i32x4.add(i32x4.sub(tmp0, tmp2), round2);
  const odd0 = i32x4.add(
    i32x4.sub(mulc(y5, FIX_1_451774981), mulc(y7, FIX_0_211164243)),
    i32x4.sub(mulc(y1, FIX_1_061594337), mulc(y3, FIX_2_172734803)),
  );
  const odd2 = i32x4.add(
    i32x4.sub(mulc(y3, FIX_0_899976223), i32x4.add(mulc(y7, FIX_0_509795579), mulc(y5, FIX_0_601344887))),
    mulc(y1, FIX_2_562915447),
  );
  const o0 = v128.bitselect(short, i32x4.add(i32x4.shr_s(i32x4.add(tmp10, odd2), n2), level), mask);
  const o1 = v128.bitselect(short, i32x4.add(i32x4.shr_s(i32x4.add(tmp12, odd0), n2), level), mask);
  const o2 = v128.bitselect(short, i32x4.add(i32x4.shr_s(i32x4.sub(tmp12, odd0), n2), level), mask);
  const o3 = v128.bitselect(short, i32x4.add(i32x4.shr_s(i32x4.sub(tmp10, odd2), n2), level), mask);
  // Saturating narrows clamp to 0-255 as descale does; bytes o_k row r at 4k + r.
  const bytes = i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(o0, o1), i16x8.narrow_i32x4_s(o2, o3));
  const rows = i8x16.shuffle(bytes, bytes, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  v128.store32_lane(o, rows, 0);
  v128.store32_lane(o + stride, rows, 1);
  v128.store32_lane(o + 2 * stride, rows, 2);
  v128.store32_lane(o + 3 * stride, rows, 3);
}

// jpeg_idct_2x2 of one block into 2x2 samples at `o`: pass 1 on SIMD lanes
// as idct4, kept in registers (row r's columns 0-3 in `a_r`, 4-7 in `b_r`),
// rows 1, 3, 5, 7 multiplied by `pre` (their quantisers times their
// constants, see idct_reduced_blocks: one i32x4.mul per half-row, not two);
// pass 2 with the two rows' two outputs in the lanes, the scalar code's
// per-row shortcut as a select. Its sums of wrapping i32 products are the
// scalar code's in another order, which wrapping addition does not change.
@inline function idct2(block: usize, quant: usize, pre: usize, o: usize, stride: usize): void {
  const r0 = v128.load(block, 0);
  const r1 = v128.load(block, 16);
  const r3 = v128.load(block, 48);
  const r5 = v128.load(block, 80);
  const r7 = v128.load(block, 112);
  const any = v128.or(v128.or(r1, r3), v128.or(r5, r7));
  const n1 = CONST_BITS - PASS1_BITS + 2;
  const round1 = i32x4.splat(1 << (n1 - 1));
  // half 0: columns 0-3
  let x0 = row(r0, quant, 0, 0);
  let short = i32x4.shl(x0, PASS1_BITS);
  let mask = zeroMask(any, 0);
  let tmp10 = i32x4.add(i32x4.shl(x0, CONST_BITS + 2), round1);
  let tmp0 = i32x4.add(
    i32x4.sub(term(r5, pre, 2, 0), term(r7, pre, 3, 0)),
    i32x4.sub(term(r1, pre, 0, 0), term(r3, pre, 1, 0)),
  );
  const a0 = v128.bitselect(short, i32x4.shr_s(i32x4.add(tmp10, tmp0), n1), mask);
  const a1 = v128.bitselect(short, i32x4.shr_s(i32x4.sub(tmp10, tmp0), n1), mask);
  // half 1: columns 4-7
  x0 = row(r0, quant, 0, 1);
  short = i32x4.shl(x0, PASS1_BITS);
  mask = zeroMask(any, 1);
  tmp10 = i32x4.add(i32x4.shl(x0, CONST_BITS + 2), round1);
  tmp0 = i32x4.add(
    i32x4.sub(term(r5, pre, 2, 1), term(r7, pre, 3, 1)),
    i32x4.sub(term(r1, pre, 0, 1), term(r3, pre, 1, 1)),
  );
  const b0 = v128.bitselect(short, i32x4.shr_s(i32x4.add(tmp10, tmp0), n1), mask);
  const b1 = v128.bitselect(short, i32x4.shr_s(i32x4.sub(tmp10, tmp0), n1), mask);
  // Pass 2, lanes (row 0, col 0), (row 0, col 1), (row 1, col 0), (row 1, col 1):
  // tmp0 = w1 * 3.624 - w3 * 1.272 + w5 * 0.850 - w7 * 0.720 of the row.
  const ca = i32x4(0, FIX_3_624509785, 0, -FIX_1_272758580);
  const cb = i32x4(0, FIX_0_850430095, 0, -FIX_0_720959822);
  const p0 = i32x4.add(i32x4.mul(a0, ca), i32x4.mul(b0, cb));
  const p1 = i32x4.add(i32x4.mul(a1, ca), i32x4.mul(b1, cb));
  const v = v128.shuffle<i32>(p0, p1, 1, 3, 5, 7);
  const sum = i32x4.add(v, v128.shuffle<i32>(v, v, 1, 0, 3, 2));
  const negate = i32x4(0, -1, 0, -1);
  const odd = i32x4.sub(v128.xor(sum, negate), negate); // sum, -sum, sum, -sum
  const w0 = v128.shuffle<i32>(a0, a1, 0, 0, 4, 4);
  const oddAny0 = v128.or(a0, b0);
  const oddAny1 = v128.or(a1, b1);
  const z = v128.shuffle<i32>(oddAny0, oddAny1, 1, 3, 5, 7);
  const zeros = i32x4.eq(v128.or(z, v128.shuffle<i32>(z, z, 1, 0, 3, 2)), i32x4.splat(0));
  const n2 = CONST_BITS + PASS1_BITS + 3 + 2;
  const full = i32x4.shr_s(
    i32x4.add(i32x4.add(i32x4.shl(w0, CONST_BITS + 2), odd), i32x4.splat(1 << (n2 - 1))),
    n2,
  );
  const dc = i32x4.shr_s(i32x4.add(w0, i32x4.splat(1 << (PASS1_BITS + 2))), PASS1_BITS + 3);
  const out = i32x4.add(v128.bitselect(dc, full, zeros), i32x4.splat(128));
  const n16 = i16x8.narrow_i32x4_s(out, out);
  const bytes = i8x16.narrow_i16x8_u(n16, n16);
  v128.store16_lane(o, bytes, 0);
  v128.store16_lane(o + stride, bytes, 1);
}

// Puts block `index`'s DC term (from `dc`) into the block at `block`, after
// clearing the block when its non-zero mark (at `marks`, if not 0) is 0: a
// progressive block no AC term reached was never cleared (see huffman.ts).
@inline function takeDc(block: usize, index: i32, dc: usize, marks: usize): void {
  if (marks != 0 && load<u64>(marks + (<usize>index << 3)) == 0) {
    const zero = i64x2.splat(0);
    for (let i = 0; i < 8; i++) v128.store(block + <usize>(i << 4), zero);
  }
  store<i16>(block, load<i16>(dc + (<usize>index << 1)));
}

/**
 * Reduced inverse DCT (`size` 4, 2 or 1 samples per block side) of the
 * `blocksWide` x `blocksHigh` blocks of a component (coefficients: i16, 64
 * per block, `paddedBlocksWide` per row; quant: 64 i32 in natural order) into
 * 8-bit samples at `out` (`stride` per row). `scratch`: 128 bytes. At size 1
 * the blocks may be kept as their DC terms alone (`dcOnly`: 2 bytes each).
 * `dc` and `marks` (each 0 or not): as idct_islow_blocks's (jpeg.ts).
 */
export function idct_reduced_blocks(
  coef: usize, paddedBlocksWide: i32, blocksWide: i32, blocksHigh: i32,
  quant: usize, out: usize, stride: i32, size: i32, scratch: usize, dcOnly: bool, dc: usize,
  marks: usize,
): void {
  const q0 = load<i32>(quant);
  const shift: usize = dcOnly ? 1 : 7;
  if (size == 2) {
    // idct2's `pre`: rows 1, 3, 5, 7 of the quantisers times their pass-1
    // constants (wrapping, as (coefficient * q) * c wraps to the same i32).
    for (let half = 0; half < 2; half++) {
      const at = <usize>(half * 16);
      v128.store(scratch + at, mulc(v128.load(quant + at, 32), FIX_3_624509785), 0);
      v128.store(scratch + at, mulc(v128.load(quant + at, 96), FIX_1_272758580), 32);
      v128.store(scratch + at, mulc(v128.load(quant + at, 160), FIX_0_850430095), 64);
      v128.store(scratch + at, mulc(v128.load(quant + at, 224), FIX_0_720959822), 96);
    }
  }
  for (let by = 0; by < blocksHigh; by++) {
    let block = coef + (<usize>(by * paddedBlocksWide) << shift);
    let o = out + <usize>(by * size * stride);
    if (size == 1) {
      const step: usize = 1 << shift;
      for (let bx = 0; bx < blocksWide; bx++) {
        store<u8>(o, <u8>descale(<i32>load<i16>(block) * q0, 3));
        block += step;
        o++;
      }
    } else if (size == 2) {
      for (let bx = 0; bx < blocksWide; bx++) {
        if (dc != 0) takeDc(block, by * paddedBlocksWide + bx, dc, marks);
        idct2(block, quant, scratch, o, <usize>stride);
        block += 128;
        o += 2;
      }
    } else {
      for (let bx = 0; bx < blocksWide; bx++) {
        if (dc != 0) takeDc(block, by * paddedBlocksWide + bx, dc, marks);
        idct4(block, quant, o, <usize>stride, scratch);
        block += 128;
        o += 4;
      }
    }
  }
}
