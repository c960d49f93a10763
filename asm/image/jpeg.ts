// JPEG hot paths on Wasm SIMD, bit-exact with src/image/jpeg/idct.ts and
// color.ts (and so with libjpeg-turbo): the islow IDCT over a component's
// blocks, then upsampling and colour conversion of whole images.
// Built into the image kernels binary (src/image/simd_wasm.ts) by
// tools/build_wasm.ts: imported memory, runtime stub, no data segments.

// ---------------------------------------------------------------- islow IDCT

// jidctint.c constants, 13-bit fixed point.
const F0_298: i32 = 2446;
const F0_390: i32 = 3196;
const F0_541: i32 = 4433;
const F0_765: i32 = 6270;
const F0_899: i32 = 7373;
const F1_175: i32 = 9633;
const F1_501: i32 = 12299;
const F1_847: i32 = 15137;
const F1_961: i32 = 16069;
const F2_053: i32 = 16819;
const F2_562: i32 = 20995;
const F3_072: i32 = 25172;

// The constants as vectors in globals, set by idct_islow_blocks from a zero
// V8 cannot see: V8 rebuilds a v128 constant at each use (3 instructions),
// where a global is one load.
let VF0_541: v128 = i64x2.splat(0);
let VF1_847: v128 = i64x2.splat(0);
let VF0_765: v128 = i64x2.splat(0);
let VF1_175: v128 = i64x2.splat(0);
let VF3_072: v128 = i64x2.splat(0);
let VF1_501: v128 = i64x2.splat(0);
let VN0_899: v128 = i64x2.splat(0);
let VN2_562: v128 = i64x2.splat(0);
let VN1_961: v128 = i64x2.splat(0);
let VN0_390: v128 = i64x2.splat(0);
let VF0_298: v128 = i64x2.splat(0);
let VF2_053: v128 = i64x2.splat(0);
// The sums of products a pass with inputs 4-7 zero reduces to (see `pass`).
let VE3: v128 = i64x2.splat(0);
let VO0_1: v128 = i64x2.splat(0);
let VO0_3: v128 = i64x2.splat(0);
let VO1_1: v128 = i64x2.splat(0);
let VO1_3: v128 = i64x2.splat(0);
let VO2_3: v128 = i64x2.splat(0);
let VO3_1: v128 = i64x2.splat(0);
let ROUND1: v128 = i64x2.splat(0); // pass 1's rounding
let ROUND2: v128 = i64x2.splat(0); // pass 2's rounding and level shift

@inline function setConstants(z: v128): void {
  VF0_541 = v128.or(i32x4.splat(F0_541), z);
  VF1_847 = v128.or(i32x4.splat(F1_847), z);
  VF0_765 = v128.or(i32x4.splat(F0_765), z);
  VF1_175 = v128.or(i32x4.splat(F1_175), z);
  VF3_072 = v128.or(i32x4.splat(F3_072), z);
  VF1_501 = v128.or(i32x4.splat(F1_501), z);
  VN0_899 = v128.or(i32x4.splat(-F0_899), z);
  VN2_562 = v128.or(i32x4.splat(-F2_562), z);
  VN1_961 = v128.or(i32x4.splat(-F1_961), z);
  VN0_390 = v128.or(i32x4.splat(-F0_390), z);
  VF0_298 = v128.or(i32x4.splat(F0_298), z);
  VF2_053 = v128.or(i32x4.splat(F2_053), z);
  VE3 = v128.or(i32x4.splat(F0_541 + F0_765), z);
  VO0_1 = v128.or(i32x4.splat(F1_175 - F0_899), z);
  VO0_3 = v128.or(i32x4.splat(F1_175 - F1_961), z);
  VO1_1 = v128.or(i32x4.splat(F1_175 - F0_390), z);
  VO1_3 = v128.or(i32x4.splat(F1_175 - F2_562), z);
  VO2_3 = v128.or(i32x4.splat(F3_072 - F2_562 - F1_961 + F1_175), z);
  VO3_1 = v128.or(i32x4.splat(F1_501 - F0_899 - F0_390 + F1_175), z);
  ROUND1 = v128.or(i32x4.splat(1 << 10), z);
  ROUND2 = v128.or(i32x4.splat((1 << 17) + (128 << 18)), z);
}

// One 1-D pass of jidctint.c on four lanes at once; inputs x0..x7 (already
// dequantised in pass 1), outputs shifted in O0..O7.
// `r` (ROUND1 or ROUND2) is added to the even part so that an arithmetic
// shift by `shift` gives DESCALE (and, in pass 2, the +128 level shift).
// `n` (a constant at each call: 8, 4 or 2): inputs n to 7 are zero and left
// out. Before its shift each output is a sum of the inputs times constants,
// in 32-bit wrapping arithmetic, where a product distributes over a sum: so
// with inputs 4-7 zero each of the four odd terms is x1 and x3 times the
// sums of the constants that reach them (eight products and four additions
// where jidctint.c takes seven products and nine additions), and the even
// ones x2 times F0_541 and F0_541 + F0_765: the same values.
@inline function pass(
  x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, x5: v128, x6: v128, x7: v128,
  r: v128, shift: i32, n: i32,
): void {
  let tmp10: v128, tmp11: v128, tmp12: v128, tmp13: v128;
  let tmp0: v128, tmp1: v128, tmp2: v128, tmp3: v128;
  if (n == 8) {
    // Even part.
    let z1 = i32x4.mul(i32x4.add(x2, x6), VF0_541);
    tmp2 = i32x4.sub(z1, i32x4.mul(x6, VF1_847));
    tmp3 = i32x4.add(z1, i32x4.mul(x2, VF0_765));
    tmp0 = i32x4.add(i32x4.shl(i32x4.add(x0, x4), 13), r);
    tmp1 = i32x4.add(i32x4.shl(i32x4.sub(x0, x4), 13), r);
    tmp10 = i32x4.add(tmp0, tmp3);
    tmp13 = i32x4.sub(tmp0, tmp3);
    tmp11 = i32x4.add(tmp1, tmp2);
    tmp12 = i32x4.sub(tmp1, tmp2);
    // Odd part.
    z1 = i32x4.add(x7, x1);
    let z2 = i32x4.add(x5, x3);
    let z3 = i32x4.add(x7, x3);
    let z4 = i32x4.add(x5, x1);
    const z5 = i32x4.mul(i32x4.add(z3, z4), VF1_175);
    tmp2 = i32x4.mul(x3, VF3_072);
    tmp3 = i32x4.mul(x1, VF1_501);
    z1 = i32x4.mul(z1, VN0_899);
    z2 = i32x4.mul(z2, VN2_562);
    z3 = i32x4.add(i32x4.mul(z3, VN1_961), z5);
    z4 = i32x4.add(i32x4.mul(z4, VN0_390), z5);
    tmp0 = i32x4.add(i32x4.mul(x7, VF0_298), i32x4.add(z1, z3));
    tmp1 = i32x4.add(i32x4.mul(x5, VF2_053), i32x4.add(z2, z4));
    tmp2 = i32x4.add(tmp2, i32x4.add(z2, z3));
    tmp3 = i32x4.add(tmp3, i32x4.add(z1, z4));
  } else {
    // Even part: z1 = x2 F0_541, tmp2 = z1, tmp3 = z1 + x2 F0_765.
    const t = i32x4.add(i32x4.shl(x0, 13), r);
    if (n == 4) {
      const e2 = i32x4.mul(x2, VF0_541);
      const e3 = i32x4.mul(x2, VE3);
      tmp10 = i32x4.add(t, e3);
      tmp13 = i32x4.sub(t, e3);
      tmp11 = i32x4.add(t, e2);
      tmp12 = i32x4.sub(t, e2);
      // Odd part: z5 = (x1 + x3) F1_175, then each term's products of x1 and x3.
      tmp0 = i32x4.add(i32x4.mul(x1, VO0_1), i32x4.mul(x3, VO0_3));
      tmp1 = i32x4.add(i32x4.mul(x1, VO1_1), i32x4.mul(x3, VO1_3));
      tmp2 = i32x4.add(i32x4.mul(x1, VF1_175), i32x4.mul(x3, VO2_3));
      tmp3 = i32x4.add(i32x4.mul(x1, VO3_1), i32x4.mul(x3, VF1_175));
    } else {
      tmp10 = t;
      tmp11 = t;
      tmp12 = t;
      tmp13 = t;
      tmp0 = i32x4.mul(x1, VO0_1);
      tmp1 = i32x4.mul(x1, VO1_1);
      tmp2 = i32x4.mul(x1, VF1_175);
      tmp3 = i32x4.mul(x1, VO3_1);
    }
  }
  O0 = i32x4.shr_s(i32x4.add(tmp10, tmp3), shift);
  O1 = i32x4.shr_s(i32x4.add(tmp11, tmp2), shift);
  O2 = i32x4.shr_s(i32x4.add(tmp12, tmp1), shift);
  O3 = i32x4.shr_s(i32x4.add(tmp13, tmp0), shift);
  O4 = i32x4.shr_s(i32x4.sub(tmp13, tmp0), shift);
  O5 = i32x4.shr_s(i32x4.sub(tmp12, tmp1), shift);
  O6 = i32x4.shr_s(i32x4.sub(tmp11, tmp2), shift);
  O7 = i32x4.shr_s(i32x4.sub(tmp10, tmp3), shift);
}

// A pass's eight outputs. Globals, not the Wasm memory: V8 checks the bounds
// of every memory access (a compare and a branch), not of a global's.
let O0: v128 = i64x2.splat(0);
let O1: v128 = i64x2.splat(0);
let O2: v128 = i64x2.splat(0);
let O3: v128 = i64x2.splat(0);
let O4: v128 = i64x2.splat(0);
let O5: v128 = i64x2.splat(0);
let O6: v128 = i64x2.splat(0);
let O7: v128 = i64x2.splat(0);

// Pass 1 of the islow IDCT on columns half * 4 to half * 4 + 3 of the block
// at `block` (dequantised by the i32 table at `quant`) into O0..O7 (row k of
// the result's four columns in Ok). Coefficient rows `n` to 7 are zero (`n`:
// 8, 4 or 2, a constant at each call). `row0`: the block's coefficient row 0
// (its DC term may come from elsewhere).
@inline function columns(block: usize, row0: v128, quant: usize, half: i32, n: i32): void {
  const c = block + <usize>(half * 8);
  const q = quant + <usize>(half * 16);
  const zero = i32x4.splat(0);
  const r0 = half == 0 ? i32x4.extend_low_i16x8_s(row0) : i32x4.extend_high_i16x8_s(row0);
  const x0 = i32x4.mul(r0, v128.load(q, 0));
  const x1 = i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 16)), v128.load(q, 32));
  const x2 = n >= 4 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 32)), v128.load(q, 64)) : zero;
  const x3 = n >= 4 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 48)), v128.load(q, 96)) : zero;
  const x4 = n == 8 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 64)), v128.load(q, 128)) : zero;
  const x5 = n == 8 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 80)), v128.load(q, 160)) : zero;
  const x6 = n == 8 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 96)), v128.load(q, 192)) : zero;
  const x7 = n == 8 ? i32x4.mul(i32x4.extend_low_i16x8_s(v128.load(c, 112)), v128.load(q, 224)) : zero;
  pass(x0, x1, x2, x3, x4, x5, x6, x7, ROUND1, 11, n);
}

// Pass 2 of the islow IDCT on rows 4g to 4g + 3 and its store as samples:
// `p0..p3` the pass 1 outputs of those rows for columns 0-3, `q0..q3` for
// columns 4-7; columns `n` to 7 are zero (`n`: 8, 4 or 2, a constant at each
// call; `q` is then not read).
@inline function rows(
  p0: v128, p1: v128, p2: v128, p3: v128, q0: v128, q1: v128, q2: v128, q3: v128,
  n: i32, o: usize, stride: i32, byColumns: v128,
): void {
  // The pass's inputs are the columns of the four rows (4x4 transposes).
  const zero = i32x4.splat(0);
  const s0 = v128.shuffle<i32>(p0, p1, 0, 4, 1, 5);
  const s2 = v128.shuffle<i32>(p2, p3, 0, 4, 1, 5);
  const s1 = n >= 4 ? v128.shuffle<i32>(p0, p1, 2, 6, 3, 7) : zero;
  const s3 = n >= 4 ? v128.shuffle<i32>(p2, p3, 2, 6, 3, 7) : zero;
  const t0 = n == 8 ? v128.shuffle<i32>(q0, q1, 0, 4, 1, 5) : zero;
  const t1 = n == 8 ? v128.shuffle<i32>(q0, q1, 2, 6, 3, 7) : zero;
  const t2 = n == 8 ? v128.shuffle<i32>(q2, q3, 0, 4, 1, 5) : zero;
  const t3 = n == 8 ? v128.shuffle<i32>(q2, q3, 2, 6, 3, 7) : zero;
  pass(
    v128.shuffle<i64>(s0, s2, 0, 2), v128.shuffle<i64>(s0, s2, 1, 3),
    n >= 4 ? v128.shuffle<i64>(s1, s3, 0, 2) : zero, n >= 4 ? v128.shuffle<i64>(s1, s3, 1, 3) : zero,
    n == 8 ? v128.shuffle<i64>(t0, t2, 0, 2) : zero, n == 8 ? v128.shuffle<i64>(t0, t2, 1, 3) : zero,
    n == 8 ? v128.shuffle<i64>(t1, t3, 0, 2) : zero, n == 8 ? v128.shuffle<i64>(t1, t3, 1, 3) : zero,
    ROUND2, 18, n,
  );
  // Ok: output column k of the four rows. Saturated to bytes (the same
  // i32 -> i16 -> u8 steps per sample), columns 0-3 and 4-7 by column,
  // then by row, then each row's two halves side by side.
  const c03 = i8x16.swizzle(
    i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(O0, O1), i16x8.narrow_i32x4_s(O2, O3)),
    byColumns,
  );
  const c47 = i8x16.swizzle(
    i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_s(O4, O5), i16x8.narrow_i32x4_s(O6, O7)),
    byColumns,
  );
  const r01 = v128.shuffle<i32>(c03, c47, 0, 4, 1, 5);
  const r23 = v128.shuffle<i32>(c03, c47, 2, 6, 3, 7);
  v128.store64_lane(o, r01, 0);
  v128.store64_lane(o + <usize>stride, r01, 1);
  v128.store64_lane(o + <usize>(2 * stride), r23, 0);
  v128.store64_lane(o + <usize>(3 * stride), r23, 1);
}

// The samples of a block with only its DC term `d` (dequantised by `q0`): the
// two passes of the islow IDCT reduce to this, with the same 32-bit wrapping,
// so the result is the same.
@inline function dcBlock(d: i32, q0: i32, out: usize, stride: i32): void {
  const w = (((d * q0) << 13) + (1 << 10)) >> 11;
  const v = ((w << 13) + (1 << 17) + (128 << 18)) >> 18;
  const fill = i8x16.splat(<i8>(v < 0 ? 0 : v > 255 ? 255 : v));
  let o = out;
  for (let r = 0; r < 8; r++) {
    v128.store64_lane(o, fill, 0);
    o += <usize>stride;
  }
}

/**
 * Inverse-transforms the `blocksWide` x `blocksHigh` blocks of a component
 * (coefficients: i16, 64 per block, `paddedBlocksWide` blocks per row; quant:
 * 64 i32 in natural order) into 8-bit samples at `out` (`stride` per row).
 * The workspace is in registers. `dc`, when not 0: the blocks' DC terms
 * (i16, `paddedBlocksWide` per row, from the first block's), which a
 * progressive frame keeps apart so that its DC scans touch 2 bytes per block,
 * not a cache line: each replaces its block's (left as it is) as it is read.
 * `marks`, when not 0 (with `dc`): the blocks' non-zero marks (u64, laid out
 * as `dc`) of a progressive frame, whose blocks are cleared only when an AC
 * term is first stored (see huffman.ts): a block marked 0 is its DC alone and
 * is not read.
 */
export function idct_islow_blocks(
  coef: usize, paddedBlocksWide: i32, blocksWide: i32, blocksHigh: i32,
  quant: usize, out: usize, stride: i32, dc: usize, marks: usize,
): void {
  const q0 = load<i32>(quant);
  const z = i32x4.splat(blocksWide >> 31);
  // Bytes 0-15 of four 4-byte columns as four 4-byte rows (a swizzle's mask,
  // made once: V8 rebuilds a v128 constant at each use in a loop).
  const byColumns = v128.or(i8x16(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z);
  setConstants(z);
  for (let by = 0; by < blocksHigh; by++) {
    for (let bx = 0; bx < blocksWide; bx++) {
      const block = coef + (<usize>(by * paddedBlocksWide + bx) << 7);
      const o = out + <usize>(by * 8 * stride + bx * 8);
      if (marks != 0 && load<u64>(marks + (<usize>(by * paddedBlocksWide + bx) << 3)) == 0) {
        const d = <i32>load<i16>(dc + (<usize>(by * paddedBlocksWide + bx) << 1));
        dcBlock(d, q0, o, stride);
        continue;
      }
      let row0 = v128.load(block, 0);
      if (dc != 0) {
        row0 = i16x8.replace_lane(row0, 0, load<i16>(dc + (<usize>(by * paddedBlocksWide + bx) << 1)));
      }
      // Which coefficients are zero: rows 4-7 (lower), 2-3 (middle), and of
      // the AC terms, columns 2-3 and 4-7 (of `ac`'s lanes).
      const lower = v128.or(
        v128.or(v128.load(block, 64), v128.load(block, 80)),
        v128.or(v128.load(block, 96), v128.load(block, 112)),
      );
      const middle = v128.or(v128.load(block, 32), v128.load(block, 48));
      const ac = v128.or(
        v128.or(i16x8.replace_lane(row0, 0, 0), v128.load(block, 16)),
        v128.or(middle, lower),
      );
      // A block with only its DC term: the two passes below reduce to this,
      // with the same 32-bit wrapping, so the result is the same.
      if (!v128.any_true(ac)) {
        dcBlock(<i32>i16x8.extract_lane_s(row0, 0), q0, o, stride);
        continue;
      }
      // Pass 1: columns in lanes, two halves of four columns, leaving out
      // the rows of zeros below row 2 or 4; the two halves' rows k: ak
      // (columns 0-3) and bk (4-7). A zero column of coefficients gives zero
      // (rounding and all), so with columns 4-7 zero the second half is not
      // made, and pass 2 (rows in lanes, rows 0-3 then 4-7) leaves out its
      // inputs from columns 2 or 4 on. Most blocks of photos are zero
      // outside their top-left 4x4 or 2x2 terms.
      if (i64x2.extract_lane(ac, 1) == 0) {
        const zero = i32x4.splat(0);
        if (i64x2.extract_lane(ac, 0) >>> 32 == 0 && !v128.any_true(v128.or(middle, lower))) {
          columns(block, row0, quant, 0, 2);
          const a0 = O0, a1 = O1, a2 = O2, a3 = O3, a4 = O4, a5 = O5, a6 = O6, a7 = O7;
          rows(a0, a1, a2, a3, zero, zero, zero, zero, 2, o, stride, byColumns);
          rows(a4, a5, a6, a7, zero, zero, zero, zero, 2, o + <usize>(4 * stride), stride, byColumns);
          continue;
        }
        if (v128.any_true(lower)) {
          columns(block, row0, quant, 0, 8);
        } else {
          columns(block, row0, quant, 0, 4);
        }
        const a0 = O0, a1 = O1, a2 = O2, a3 = O3, a4 = O4, a5 = O5, a6 = O6, a7 = O7;
        rows(a0, a1, a2, a3, zero, zero, zero, zero, 4, o, stride, byColumns);
        rows(a4, a5, a6, a7, zero, zero, zero, zero, 4, o + <usize>(4 * stride), stride, byColumns);
        continue;
      }
      if (v128.any_true(lower)) {
        columns(block, row0, quant, 0, 8);
      } else {
        columns(block, row0, quant, 0, 4);
      }
      const a0 = O0, a1 = O1, a2 = O2, a3 = O3, a4 = O4, a5 = O5, a6 = O6, a7 = O7;
      if (v128.any_true(lower)) {
        columns(block, row0, quant, 1, 8);
      } else {
        columns(block, row0, quant, 1, 4);
      }
      const b0 = O0, b1 = O1, b2 = O2, b3 = O3, b4 = O4, b5 = O5, b6 = O6, b7 = O7;
      rows(a0, a1, a2, a3, b0, b1, b2, b3, 8, o, stride, byColumns);
      rows(a4, a5, a6, a7, b4, b5, b6, b7, 8, o + <usize>(4 * stride), stride, byColumns);
    }
  }
}

// ---------------------------------------------------------------- upsampling

// A component descriptor: 12 i32 (48 bytes) at `d`: plane, stride, width,
// height, hExpand, vExpand, row buffer, plain (1: replication only, no fancy
// upsampling, as libjpeg at 1/8 scale), column-sum buffer (u16, width + 24),
// then unused.

@inline function clamp(x: i32): i32 {
  return x < 0 ? 0 : x > 255 ? 255 : x;
}

// Fancy upsampling of one row of sums `cs` (u16, with cs[-1] = cs[0] and
// cs[width] = cs[width - 1] stored as padding): out[2i] = (3 cs[i] + cs[i-1]
// + even) >> shift, out[2i+1] = (3 cs[i] + cs[i+1] + odd) >> shift, for i
// from `first` (a multiple of 8) to `end`, eight inputs at a time (writes up
// to 16 bytes past 2 * end; reads cs[first - 1] to cs[end + 8]).
function fancy_pairs(
  cs: usize, first: i32, end: i32, out: usize, even: i32, odd: i32, shift: i32,
): void {
  // Made from a zero V8 cannot see, so that it does not rebuild them in the loop.
  const z = i16x8.splat(<i16>(end >> 31));
  const e = v128.or(i16x8.splat(<i16>even), z);
  const o = v128.or(i16x8.splat(<i16>odd), z);
  for (let i = first; i < end; i += 8) {
    const p = cs + (<usize>i << 1);
    const t = v128.load(p);
    const t3 = i16x8.add(i16x8.add(t, t), t);
    const lo = i16x8.shr_u(i16x8.add(i16x8.add(t3, v128.load(p - 2)), e), shift);
    const hi = i16x8.shr_u(i16x8.add(i16x8.add(t3, v128.load(p + 2)), o), shift);
    // Interleaved as 16-bit lanes (punpcklwd, punpckhwd), then narrowed.
    v128.store(
      out + (<usize>i << 1),
      i8x16.narrow_i16x8_u(
        v128.shuffle<i16>(lo, hi, 0, 8, 1, 9, 2, 10, 3, 11),
        v128.shuffle<i16>(lo, hi, 4, 12, 5, 13, 6, 14, 7, 15),
      ),
    );
  }
}

// Column sums for fancy upsampling into `cs` (from cs + 2; cs[0] and
// cs[width + 1] are the replicated ends): near * 3 + far, or near alone, for
// columns `first` (a multiple of 8) to `end` (at most `width`; the ends are
// stored when the range reaches them).
function column_sums(
  near: usize, far: usize, first: i32, end: i32, width: i32, cs: usize, vertical: bool,
): void {
  const c = cs + 2;
  for (let i = first; i < end; i += 8) {
    const n = i16x8.extend_low_i8x16_u(v128.load64_zero(near + <usize>i));
    let v = n;
    if (vertical) {
      const f = i16x8.extend_low_i8x16_u(v128.load64_zero(far + <usize>i));
      v = i16x8.add(i16x8.add(i16x8.add(n, n), n), f);
    }
    v128.store(c + (<usize>i << 1), v);
  }
  if (first == 0) store<u16>(cs, load<u16>(c));
  if (end == width) store<u16>(c + (<usize>width << 1), load<u16>(c + (<usize>(width - 1) << 1)));
}

/**
 * Image row `y` of the component described at `d`; returns where the row is.
 * Of a fancy h2 upsampling, only output columns `left` to `right` are made
 * (and their neighbours up to the eights around them; the rest of the row is
 * left as it was).
 */
function upsample_row(d: usize, y: i32, left: i32, right: i32): usize {
  const plane = <usize>load<i32>(d, 0);
  const stride = load<i32>(d, 4);
  const width = load<i32>(d, 8);
  const height = load<i32>(d, 12);
  const hExpand = load<i32>(d, 16);
  const vExpand = load<i32>(d, 20);
  const out = <usize>load<i32>(d, 24);
  if (hExpand == 1 && vExpand == 1) return plane + <usize>(y * stride);
  const fancy = load<i32>(d, 28) == 0;
  if (fancy && hExpand == 2 && width > 2 && (vExpand == 1 || vExpand == 2)) {
    // SIMD h2v1 / h2v2 fancy upsampling through a row of column sums.
    const cs = <usize>load<i32>(d, 32);
    // Output columns left..right - 1 come from inputs left >> 1 to (right - 1) >> 1
    // and read their column sums one further each side.
    const first = (left >> 1) & ~7;
    const end = min(((right - 1) >> 1) + 1, width);
    const sumsFirst = max(first - 1, 0) & ~7;
    const sumsEnd = min(end + 1, width);
    if (vExpand == 1) {
      column_sums(plane + <usize>(y * stride), 0, sumsFirst, sumsEnd, width, cs, false);
      fancy_pairs(cs + 2, first, end, out, 1, 2, 2);
    } else {
      const r = y >> 1;
      const far = (y & 1) == 0 ? max(r - 1, 0) : min(r + 1, height - 1);
      column_sums(
        plane + <usize>(r * stride), plane + <usize>(far * stride), sumsFirst, sumsEnd, width, cs,
        true,
      );
      fancy_pairs(cs + 2, first, end, out, 8, 7, 4);
    }
  } else if (fancy && vExpand == 2 && hExpand == 1) {
    const r = y >> 1;
    const far = (y & 1) == 0 ? max(r - 1, 0) : min(r + 1, height - 1);
    const bias = (y & 1) == 0 ? 1 : 2;
    const a = plane + <usize>(r * stride);
    const b = plane + <usize>(far * stride);
    for (let x = 0; x < width; x++) {
      store<u8>(out + <usize>x, (<i32>load<u8>(a + <usize>x) * 3 + <i32>load<u8>(b + <usize>x) + bias) >> 2);
    }
  } else {
    const src = plane + <usize>((y / vExpand) * stride);
    let o = out;
    for (let x = 0; x < width; x++) {
      const v = load<u8>(src + <usize>x);
      for (let k = 0; k < hExpand; k++) store<u8>(o++, v);
    }
  }
  return out;
}

// ---------------------------------------------------------------- colour

/**
 * Upsamples and converts a whole image: `space` 0 grey (1 channel), 1 YCbCr
 * to RGB, 2 RGB copied, 3 CMYK inverted (Pillow's "CMYK;I"), 4 YCCK to
 * inverted CMYK, 5 grey replicated to RGB. `desc` holds one 48-byte
 * descriptor per component. Only rows `top` to `bottom` are made, and of
 * them only columns `left` to `right` are converted (the upsampling, whose
 * edges differ, runs over whole rows); the other output bytes are left as
 * they were.
 */
export function convert_image(
  desc: usize, space: i32, out: usize, width: i32, top: i32, bottom: i32, left: i32, right: i32,
): void {
  const channels = space == 0 ? 1 : space == 3 || space == 4 ? 4 : 3;
  const count = right - left;
  if (count <= 0) return;
  for (let y = top; y < bottom; y++) {
    const o = out + <usize>((y * width + left) * channels);
    const r0 = upsample_row(desc, y, left, right) + <usize>left;
    if (space == 0) {
      memory.copy(o, r0, <usize>count);
      continue;
    }
    if (space == 5) {
      grey_rgb_row(r0, o, count);
      continue;
    }
    const r1 = upsample_row(desc + 48, y, left, right) + <usize>left;
    const r2 = upsample_row(desc + 96, y, left, right) + <usize>left;
    if (space == 1) {
      ycc_rgb_row(r0, r1, r2, o, count);
    } else if (space == 2) {
      for (let x = 0; x < count; x++) {
        const p = o + <usize>(x * 3);
        store<u8>(p, load<u8>(r0 + <usize>x));
        store<u8>(p, load<u8>(r1 + <usize>x), 1);
        store<u8>(p, load<u8>(r2 + <usize>x), 2);
      }
    } else {
      const r3 = upsample_row(desc + 144, y, left, right) + <usize>left;
      for (let x = 0; x < count; x++) {
        const p = o + <usize>(x * 4);
        const k = 255 - <i32>load<u8>(r3 + <usize>x);
        if (space == 3) {
          store<u8>(p, 255 - <i32>load<u8>(r0 + <usize>x));
          store<u8>(p, 255 - <i32>load<u8>(r1 + <usize>x), 1);
          store<u8>(p, 255 - <i32>load<u8>(r2 + <usize>x), 2);
        } else {
          const l = <i32>load<u8>(r0 + <usize>x);
          const cb = <i32>load<u8>(r1 + <usize>x) - 128;
          const cr = <i32>load<u8>(r2 + <usize>x) - 128;
          store<u8>(p, clamp(l + ((91881 * cr + 32768) >> 16)));
          store<u8>(p, clamp(l + ((-22554 * cb + 32768 - 46802 * cr) >> 16)), 1);
          store<u8>(p, clamp(l + ((116130 * cb + 32768) >> 16)), 2);
        }
        store<u8>(p, k, 3);
      }
    }
  }
}

/** Each grey sample three times, sixteen at a time (48 bytes), scalar tail. */
function grey_rgb_row(src: usize, out: usize, width: i32): void {
  let x = 0;
  for (; x + 16 <= width; x += 16) {
    const g = v128.load(src + <usize>x);
    const p = out + <usize>(x * 3);
    v128.store(p, i8x16.shuffle(g, g, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5));
    v128.store(p, i8x16.shuffle(g, g, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10), 16);
    v128.store(p, i8x16.shuffle(g, g, 10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15), 32);
  }
  for (; x < width; x++) {
    const v = load<u8>(src + <usize>x);
    const p = out + <usize>(x * 3);
    store<u8>(p, v);
    store<u8>(p, v, 1);
    store<u8>(p, v, 2);
  }
}

/**
 * jdcolor.c ycc_rgb_convert, 16 pixels at a time, then 8 (exact), scalar
 * tail. R and B add to Y a product rounded as a Q15 multiply rounds: for
 * every x in [-128, 127], (91881 x + 32768) >> 16 = (2x * 22970 + 16384) >> 15
 * and (116130 x + 32768) >> 16 = (2x * 29033 + 16384) >> 15 (checked for all
 * 256 values by a test), one `i16x8.q15mulr_sat_s` each. G's 32-bit sum comes
 * from pmaddwd-style dot products of 16-bit pairs: -46802 cr = -(cr << 16) +
 * 18734 cr, and the rounding 32768 is added to the dot product.
 */
function ycc_rgb_row(yr: usize, cbr: usize, crr: usize, out: usize, width: i32): void {
  let x = 0;
  // V8 rebuilds a v128 constant at each use in a loop (3-4 instructions):
  // made from a zero it cannot see (width >= 0), they are made once.
  const z = i32x4.splat(width >> 31);
  const c128 = v128.or(i16x8.splat(128), z);
  const kR = v128.or(i16x8.splat(22970), z);
  const kB = v128.or(i16x8.splat(29033), z);
  const kG = v128.or(i32x4.splat((18734 << 16) | (-22554 & 0xffff)), z); // pairs (cb, cr)
  const half = v128.or(i32x4.splat(32768), z);
  // The interleaving shuffles below as swizzles of run-time masks (a lane
  // index of 16 or more gives 0), ORed. From R0-7 G0-7 (rg), B0-15 (b) and
  // R8-15 G8-15 (rg2): 48 bytes R0 G0 B0 R1 ... B15.
  const m0Rg = v128.or(i8x16(0, 8, -1, 1, 9, -1, 2, 10, -1, 3, 11, -1, 4, 12, -1, 5), z);
  const m0B = v128.or(i8x16(-1, -1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1), z);
  const m1Rg = v128.or(i8x16(13, -1, 6, 14, -1, 7, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1), z);
  const m1B = v128.or(i8x16(-1, 5, -1, -1, 6, -1, -1, 7, -1, -1, 8, -1, -1, 9, -1, -1), z);
  const m1Rg2 = v128.or(i8x16(-1, -1, -1, -1, -1, -1, -1, -1, 0, 8, -1, 1, 9, -1, 2, 10), z);
  const m2B = v128.or(i8x16(10, -1, -1, 11, -1, -1, 12, -1, -1, 13, -1, -1, 14, -1, -1, 15), z);
  const m2Rg2 = v128.or(i8x16(-1, 3, 11, -1, 4, 12, -1, 5, 13, -1, 6, 14, -1, 7, 15, -1), z);
  for (; x + 16 <= width; x += 16) {
    const yv = v128.load(yr + <usize>x);
    const bv = v128.load(cbr + <usize>x);
    const rv = v128.load(crr + <usize>x);
    const ylo = i16x8.extend_low_i8x16_u(yv);
    const yhi = i16x8.extend_high_i8x16_u(yv);
    const blo = i16x8.sub(i16x8.extend_low_i8x16_u(bv), c128);
    const bhi = i16x8.sub(i16x8.extend_high_i8x16_u(bv), c128);
    const rlo = i16x8.sub(i16x8.extend_low_i8x16_u(rv), c128);
    const rhi = i16x8.sub(i16x8.extend_high_i8x16_u(rv), c128);
    // Saturated to bytes: R0-7 G0-7, R8-15 G8-15, B0-15.
    const rg = i8x16.narrow_i16x8_u(red(ylo, rlo, kR), green(ylo, blo, rlo, kG, half));
    const rg2 = i8x16.narrow_i16x8_u(red(yhi, rhi, kR), green(yhi, bhi, rhi, kG, half));
    const b = i8x16.narrow_i16x8_u(blue(ylo, blo, kB), blue(yhi, bhi, kB));
    const p = out + <usize>(x * 3);
    v128.store(p, v128.or(i8x16.swizzle(rg, m0Rg), i8x16.swizzle(b, m0B)));
    v128.store(
      p,
      v128.or(v128.or(i8x16.swizzle(rg, m1Rg), i8x16.swizzle(rg2, m1Rg2)), i8x16.swizzle(b, m1B)),
      16,
    );
    v128.store(p, v128.or(i8x16.swizzle(rg2, m2Rg2), i8x16.swizzle(b, m2B)), 32);
  }
  if (x + 8 <= width) {
    const yv = i16x8.extend_low_i8x16_u(v128.load64_zero(yr + <usize>x));
    const bv = i16x8.sub(i16x8.extend_low_i8x16_u(v128.load64_zero(cbr + <usize>x)), c128);
    const rv = i16x8.sub(i16x8.extend_low_i8x16_u(v128.load64_zero(crr + <usize>x)), c128);
    const rg = i8x16.narrow_i16x8_u(red(yv, rv, kR), green(yv, bv, rv, kG, half));
    const b = i8x16.narrow_i16x8_u(blue(yv, bv, kB), blue(yv, bv, kB));
    const p = out + <usize>(x * 3);
    v128.store(p, v128.or(i8x16.swizzle(rg, m0Rg), i8x16.swizzle(b, m0B)));
    v128.store64_lane(p, v128.or(i8x16.swizzle(rg, m1Rg), i8x16.swizzle(b, m1B)), 0, 16);
    x += 8;
  }
  for (; x < width; x++) {
    const l = <i32>load<u8>(yr + <usize>x);
    const cb = <i32>load<u8>(cbr + <usize>x) - 128;
    const cr = <i32>load<u8>(crr + <usize>x) - 128;
    const p = out + <usize>(x * 3);
    store<u8>(p, clamp(l + ((91881 * cr + 32768) >> 16)));
    store<u8>(p, clamp(l + ((-22554 * cb + 32768 - 46802 * cr) >> 16)), 1);
    store<u8>(p, clamp(l + ((116130 * cb + 32768) >> 16)), 2);
  }
}

// Eight R, G or B values of ycc_rgb_row from Y (0-255), Cb - 128 and Cr -
// 128 in i16 lanes, before saturation.
@inline function red(y: v128, cr: v128, kR: v128): v128 {
  return i16x8.add(y, i16x8.q15mulr_sat_s(i16x8.add(cr, cr), kR));
}

@inline function blue(y: v128, cb: v128, kB: v128): v128 {
  return i16x8.add(y, i16x8.q15mulr_sat_s(i16x8.add(cb, cb), kB));
}

@inline function green(y: v128, cb: v128, cr: v128, kG: v128, half: v128): v128 {
  const lo = v128.shuffle<i16>(cb, cr, 0, 8, 1, 9, 2, 10, 3, 11);
  const hi = v128.shuffle<i16>(cb, cr, 4, 12, 5, 13, 6, 14, 7, 15);
  return i16x8.add(i16x8.sub(y, cr), i16x8.narrow_i32x4_s(
    i32x4.shr_s(i32x4.add(i32x4.dot_i16x8_s(lo, kG), half), 16),
    i32x4.shr_s(i32x4.add(i32x4.dot_i16x8_s(hi, kG), half), 16),
  ));
}
