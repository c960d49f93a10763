// Gradients of a convolution's (or linear layer's) parameters on NHWC activations.
//
// The weight gradient is a GEMM whose reduction runs over output pixels:
//   dW[o, kk] += sum_m dY[m, o] * X[m, kk],   kk = (i * KW + j) * C + ch,
// where X is the (never built) im2col matrix of the input. The register tile
// is the forward's: 6 rows of dW (output channels) x 8 columns (kk), 12
// accumulators; each step splats 6 values of dY (packed per block so they
// are contiguous) and loads 2 vectors of X, 12 multiply-adds. The
// accumulators start from dW itself and take the pixels in ascending order,
// so every element is the same sequence of operations whatever the chunk
// bounds (o, kk ranges): any split across threads is bit-identical.
//
// X comes from one of three places, chosen by shape alone:
//   dense   1x1, stride 1, no padding: X is the input itself (linear layers
//           too), each column tile of a block copied into a strip first;
//   direct  C >= 8: for each tap (i, j), X's columns are the input's pixels
//           shifted by the tap; rows of output pixels whose tap falls outside
//           the input are skipped (no zeros are multiplied); on maps narrower
//           than 8 pixels a tap's pixels are gathered into one span;
//   band    C < 8 (conv1's 7x7 stride 2 on 3 channels): the GEMM runs
//           transposed (6 columns kk x 8 output channels a tile, dY read in
//           place), X from a zero-padded copy of the input rows a block
//           reaches (see wgrad_band).

import { copy_floats, load_hi_n, load_lo_n, madd, store_n, zero_floats } from "./simd";

/** Output pixels per block: a block's X columns of one tile (one cache line per pixel) stay in L1. */
const WGRAD_PIXELS: i32 = 256;

@inline function wgrad_band_path(c: i32): bool {
  return c < 8;
}

/** Bytes of the 6 x 8 dW copy a partial column tile runs on. */
const TMP_BYTES: usize = 6 * 8 * 4;

/**
 * Scratch bytes one thread needs for `conv2d_weight_grad` on input channels
 * c, a kh x kw kernel, output rows of ow pixels and oc output channels: a
 * block of dY packed by tiles and a strip, or for c < 8 a transposed copy of dW and
 * the band (see wgrad_band).
 */
export function conv2d_weight_grad_scratch_bytes(c: i32, kh: i32, kw: i32, ow: i32, oc: i32): usize {
  if (wgrad_band_path(c)) {
    const k = kh * kw * c;
    return band_head_bytes(k, oc, ow) + (<usize>band_room(k) << 2);
  }
  return (<usize>max(WGRAD_PIXELS, ow) * <usize>oc << 2) + TMP_BYTES + STRIP_BYTES;
}

/**
 * Bytes of the dense path's copy of one column tile of X: a block's pixels x
 * 8 floats, contiguous. Read in place, X's rows lie `xstride` floats apart,
 * a multiple of 256 bytes for most layers (C = 256, 512, ...), so a tile's
 * column of one block maps to a few of L1's 64 sets and is evicted between
 * the row tiles that reuse it; the copy (8 KB) stays in L1.
 */
const STRIP_BYTES: usize = <usize>WGRAD_PIXELS * 32;

/**
 * Output rows shorter than this gather each tap's pixels (see the direct path):
 * on 7x7 maps a tap's rows are spans of 6-7 pixels, and a span's set-up and
 * accumulator loads and stores cost as much as its multiply-adds.
 */
const GATHER_BELOW: i32 = 8;

// strip[p, 0..8) = x[p, 0..nc) and zeros after, for p < count (x: `xb` bytes per pixel).
@inline function copy_strip(strip: usize, x: usize, xb: usize, count: i32, nc: i32): void {
  if (nc == 8) {
    for (let p = 0; p < count; p++, strip += 32, x += xb) {
      v128.store(strip, v128.load(x));
      v128.store(strip, v128.load(x, 16), 16);
    }
  } else {
    for (let p = 0; p < count; p++, strip += 32, x += xb) {
      v128.store(strip, load_lo_n(x, nc));
      v128.store(strip, load_hi_n(x, nc), 16);
    }
  }
}

// Copies dY rows [m0, m0 + count), channels [o0, o1), into `pack` by tiles
// of 6, then 4, 2, 1 rows (the order the tile loop takes): the tile at o
// starts at pack + (o - o0) * count floats and holds its mr values per pixel.
@inline export function pack_dy(
  dy: usize, dyb: usize, m0: i32, count: i32, o0: i32, o1: i32, pack: usize,
): void {
  let o = o0;
  for (; o + 6 <= o1; o += 6) pack_tile(6, dy, dyb, m0, count, o, pack + (<usize>(o - o0) * <usize>count << 2));
  if (o + 4 <= o1) {
    pack_tile(4, dy, dyb, m0, count, o, pack + (<usize>(o - o0) * <usize>count << 2));
    o += 4;
  }
  if (o + 2 <= o1) {
    pack_tile(2, dy, dyb, m0, count, o, pack + (<usize>(o - o0) * <usize>count << 2));
    o += 2;
  }
  if (o < o1) pack_tile(1, dy, dyb, m0, count, o, pack + (<usize>(o - o0) * <usize>count << 2));
}

// pack_dy for `span` pixels from m0 that go at pixel `at` of tiles holding `count` pixels each
// (so that several spans, packed one after another, read as consecutive pixels).
@inline function pack_dy_span(
  dy: usize, dyb: usize, m0: i32, span: i32, o0: i32, o1: i32, pack: usize, count: i32, at: i32,
): void {
  let o = o0;
  for (; o + 6 <= o1; o += 6) {
    pack_tile(6, dy, dyb, m0, span, o, pack + (<usize>((o - o0) * count + at * 6) << 2));
  }
  if (o + 4 <= o1) {
    pack_tile(4, dy, dyb, m0, span, o, pack + (<usize>((o - o0) * count + at * 4) << 2));
    o += 4;
  }
  if (o + 2 <= o1) {
    pack_tile(2, dy, dyb, m0, span, o, pack + (<usize>((o - o0) * count + at * 2) << 2));
    o += 2;
  }
  if (o < o1) pack_tile(1, dy, dyb, m0, span, o, pack + (<usize>((o - o0) * count + at) << 2));
}

// One tile's mr (a constant after inlining) values per pixel, moved as a
// vector and/or a 64-bit word.
@inline function pack_tile(
  mr: i32, dy: usize, dyb: usize, m0: i32, count: i32, o: i32, dst: usize,
): void {
  let src = dy + <usize>m0 * dyb + (<usize>o << 2);
  for (let p = 0; p < count; p++, src += dyb, dst += <usize>mr << 2) {
    if (mr >= 4) v128.store(dst, v128.load(src));
    if (mr == 6) store<u64>(dst, load<u64>(src, 16), 16);
    if (mr == 2) store<u64>(dst, load<u64>(src));
    if (mr == 1) store<f32>(dst, load<f32>(src));
  }
}

// One tile of mr (1 to 6) rows of dW at `d` (row stride ldw bytes) x nc
// columns (`full`: nc = 8; else 1 to 7: lanes past nc read nothing, store
// nothing). dY values at `pk`, `pstep` bytes per pixel; X at `a`, `astep`
// bytes per pixel. `direct`: the rows of output pixels of one block (see the
// top), else `count` consecutive pixels. mr, full and direct are constants
// after inlining.
@inline function wgrad_tile(
  mr: i32, full: bool, nc: i32, d: usize, ldw: usize, pk: usize, pstep: usize,
  direct: bool, a: usize, astep: usize, count: i32,
  // direct only: rows [r0, r0 + rows) of N * OH, tap row i, column range [oxLo, oxHi).
  oh: i32, ow: i32, h: i32, rowBytes: usize, sh: i32, ph: i32, i: i32, r0: i32, rows: i32,
  oxLo: i32, oxHi: i32,
): void {
  const d1 = d + ldw, d2 = d1 + ldw, d3 = d2 + ldw, d4 = d3 + ldw, d5 = d4 + ldw;
  const z = f32x4.splat(0);
  let c00 = full ? v128.load(d) : load_lo_n(d, nc), c01 = full ? v128.load(d, 16) : load_hi_n(d, nc);
  let c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  if (mr > 1) { c10 = v128.load(d1); c11 = v128.load(d1, 16); }
  if (mr > 2) { c20 = v128.load(d2); c21 = v128.load(d2, 16); }
  if (mr > 3) { c30 = v128.load(d3); c31 = v128.load(d3, 16); }
  if (mr > 4) { c40 = v128.load(d4); c41 = v128.load(d4, 16); }
  if (mr > 5) { c50 = v128.load(d5); c51 = v128.load(d5, 16); }
  let r = 0;
  let span = count;
  let dp = pk, xp = a;
  while (true) {
    if (direct) {
      // The next row of output pixels whose tap row lies inside the input.
      if (r >= rows) break;
      const row = r0 + r;
      const img = row / oh, oy = row - img * oh;
      const iy = oy * sh - ph + i;
      dp = pk + <usize>(r * ow + oxLo) * pstep;
      r++;
      if (<u32>iy >= <u32>h) continue;
      xp = a + (<usize>img * <usize>h + <usize>iy) * rowBytes;
      span = oxHi - oxLo;
    } else if (r++ > 0) {
      break;
    }
    // One pointer per row of dY bumped per pixel (no constant offsets: V8
    // recomputes a load-splat's address and limit for each), two pixels per
    // trip of an inner loop of constant count (V8 drops its stack check):
    // fewer branches per FMA, which is what limits Intel hosts (asm/gemm.ts).
    // An odd last pixel takes the step written out again (see GEMM_BUMP2 for why).
    let q0 = dp, q1 = dp + 4, q2 = dp + 8, q3 = dp + 12, q4 = dp + 16, q5 = dp + 20;
    let b0: v128, b1: v128, va: v128;
    let left = span;
    while (left >= 2) {
      for (let u = 0; u < 2; u++) {
        b0 = full ? v128.load(xp) : load_lo_n(xp, nc);
        b1 = full ? v128.load(xp, 16) : load_hi_n(xp, nc);
        xp += astep;
        va = v128.load32_splat(q0);
        c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
        if (mr > 1) {
          va = v128.load32_splat(q1);
          c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
        }
        if (mr > 2) {
          va = v128.load32_splat(q2);
          c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
        }
        if (mr > 3) {
          va = v128.load32_splat(q3);
          c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
        }
        if (mr > 4) {
          va = v128.load32_splat(q4);
          c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
        }
        if (mr > 5) {
          va = v128.load32_splat(q5);
          c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
        }
        q0 += pstep; q1 += pstep; q2 += pstep; q3 += pstep; q4 += pstep; q5 += pstep;
      }
      left -= 2;
    }
    if (left > 0) {
      b0 = full ? v128.load(xp) : load_lo_n(xp, nc);
      b1 = full ? v128.load(xp, 16) : load_hi_n(xp, nc);
      xp += astep;
      va = v128.load32_splat(q0);
      c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
      if (mr > 1) {
        va = v128.load32_splat(q1);
        c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
      }
      if (mr > 2) {
        va = v128.load32_splat(q2);
        c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
      }
      if (mr > 3) {
        va = v128.load32_splat(q3);
        c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
      }
      if (mr > 4) {
        va = v128.load32_splat(q4);
        c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
      }
      if (mr > 5) {
        va = v128.load32_splat(q5);
        c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
      }
      q0 += pstep; q1 += pstep; q2 += pstep; q3 += pstep; q4 += pstep; q5 += pstep;
    }
    dp = q0;
  }
  if (full) {
    v128.store(d, c00); v128.store(d, c01, 16);
  } else {
    store_n(d, c00, c01, nc);
  }
  if (mr > 1) { v128.store(d1, c10); v128.store(d1, c11, 16); }
  if (mr > 2) { v128.store(d2, c20); v128.store(d2, c21, 16); }
  if (mr > 3) { v128.store(d3, c30); v128.store(d3, c31, 16); }
  if (mr > 4) { v128.store(d4, c40); v128.store(d4, c41, 16); }
  if (mr > 5) { v128.store(d5, c50); v128.store(d5, c51, 16); }
}

// All rows [o0, o1) of dW for the nc columns at dW column `col` (bytes from
// a row's start) and X at `a`: tiles of 6 rows, then 4 + 1, 2 + 1 or 1 like
// the forward GEMM. A partial column tile (nc < 8): when X may be read 8
// wide (`padded`: strips and bands have slack after them), the tiles run on a
// copy of their nc columns in `tmp` (6 x 8 floats); otherwise its rows go one
// at a time, reading only nc columns of X. Either way each element sees the
// operations of the 8-wide tiles.
@inline export function wgrad_rows(
  nc: i32, dw: usize, ldw: usize, col: usize, o0: i32, o1: i32, pack: usize, count: i32,
  direct: bool, padded: bool, tmp: usize, a: usize, astep: usize,
  oh: i32, ow: i32, h: i32, rowBytes: usize, sh: i32, ph: i32, i: i32, r0: i32, rows: i32,
  oxLo: i32, oxHi: i32,
): void {
  if (nc < 8 && !padded) {
    let o = o0;
    while (o < o1) {
      const left = o1 - o;
      const mr = left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
      const tile = pack + (<usize>(o - o0) * <usize>count << 2);
      for (let t = 0; t < mr; t++) {
        wgrad_tile(
          1, false, nc, dw + <usize>(o + t) * ldw + col, ldw, tile + (<usize>t << 2), <usize>mr << 2,
          direct, a, astep, count, oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
        );
      }
      o += mr;
    }
    return;
  }
  // Full tiles read and write dW in place; partial ones (padded X) a copy.
  const copy = nc < 8;
  const d = copy ? tmp : dw + col, ld = copy ? <usize>32 : ldw;
  let o = o0;
  for (; o + 6 <= o1; o += 6) {
    if (copy) tile_in(6, tmp, dw + <usize>o * ldw + col, ldw, nc);
    wgrad_tile(
      6, true, 8, copy ? d : d + <usize>o * ld, ld, pack + (<usize>(o - o0) * <usize>count << 2), 24,
      direct, a, astep, count, oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
    );
    if (copy) tile_out(6, tmp, dw + <usize>o * ldw + col, ldw, nc);
  }
  if (o + 4 <= o1) {
    if (copy) tile_in(4, tmp, dw + <usize>o * ldw + col, ldw, nc);
    wgrad_tile(
      4, true, 8, copy ? d : d + <usize>o * ld, ld, pack + (<usize>(o - o0) * <usize>count << 2), 16,
      direct, a, astep, count, oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
    );
    if (copy) tile_out(4, tmp, dw + <usize>o * ldw + col, ldw, nc);
    o += 4;
  }
  if (o + 2 <= o1) {
    if (copy) tile_in(2, tmp, dw + <usize>o * ldw + col, ldw, nc);
    wgrad_tile(
      2, true, 8, copy ? d : d + <usize>o * ld, ld, pack + (<usize>(o - o0) * <usize>count << 2), 8,
      direct, a, astep, count, oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
    );
    if (copy) tile_out(2, tmp, dw + <usize>o * ldw + col, ldw, nc);
    o += 2;
  }
  if (o < o1) {
    if (copy) tile_in(1, tmp, dw + <usize>o * ldw + col, ldw, nc);
    wgrad_tile(
      1, true, 8, copy ? d : d + <usize>o * ld, ld, pack + (<usize>(o - o0) * <usize>count << 2), 4,
      direct, a, astep, count, oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
    );
    if (copy) tile_out(1, tmp, dw + <usize>o * ldw + col, ldw, nc);
  }
}

// tmp (rows x 8) = the nc columns of `rows` dW rows at d, zeros after them.
@inline function tile_in(rows: i32, tmp: usize, d: usize, ldw: usize, nc: i32): void {
  for (let r = 0; r < rows; r++, tmp += 32, d += ldw) {
    v128.store(tmp, load_lo_n(d, nc));
    v128.store(tmp, load_hi_n(d, nc), 16);
  }
}

// The nc columns of `rows` dW rows at d = tmp (rows x 8).
@inline function tile_out(rows: i32, tmp: usize, d: usize, ldw: usize, nc: i32): void {
  for (let r = 0; r < rows; r++, tmp += 32, d += ldw) store_n(d, v128.load(tmp), v128.load(tmp, 16), nc);
}

// wgrad_rows on X read 8 wide (a strip, a band), over the rows of output
// pixels that `direct` takes (see wgrad_tile). Not inlined: one copy of those
// tile loops serves every caller.
function wgrad_rows_wide(
  nc: i32, dw: usize, ldw: usize, col: usize, o0: i32, o1: i32, pack: usize, count: i32,
  tmp: usize, a: usize, astep: usize,
  oh: i32, ow: i32, h: i32, rowBytes: usize, sh: i32, ph: i32, i: i32, rows: i32,
): void {
  wgrad_rows(
    nc, dw, ldw, col, o0, o1, pack, count, true, true, tmp, a, astep,
    oh, ow, h, rowBytes, sh, ph, i, 0, rows, 0, ow,
  );
}

// `count` consecutive pixels of X at a, `astep` bytes apart, read 8 wide (one row of one span).
@inline export function wgrad_span(
  nc: i32, dw: usize, ldw: usize, col: usize, o0: i32, o1: i32, pack: usize, count: i32,
  tmp: usize, a: usize, astep: usize,
): void {
  wgrad_rows_wide(nc, dw, ldw, col, o0, o1, pack, count, tmp, a, astep, 1, count, 1, 0, 0, 0, 0, 1);
}

// C < 8 (conv1's 3 channels): the GEMM runs transposed, dW^T += X^T dY, a
// tile being 6 columns kk of dW (rows of the im2col matrix's transpose) x 8
// output channels. Each step splats 6 values of X read from a band and loads
// 2 vectors of dY in place (8 output channels of one pixel are contiguous,
// so dY is not packed), 12 multiply-adds. The band holds the input rows (and
// columns) a block of output pixels reaches, copied with the padding's zeros,
// in which one kernel row's kw * C columns are contiguous for every output
// pixel, a pixel `sw * C` floats after the last: the 6 splat pointers of a
// tile may sit in different kernel rows and move by the same step. The block
// is `bRows` whole output rows of one image, or when that band does not fit
// the scratch, `bCols` output columns of one row. The accumulators live in a
// transposed copy of the chunk's dW (kk rows padded to a multiple of 6,
// channels to a multiple of 8), taken at the start and written back at the
// end: exact copies. Each element takes its pixels in ascending order,
// padding zeros included, as an im2col matrix would give them, so the bits
// are those of the untransposed kernel and of any chunking. A chunk copies
// only the band rows its kernel rows [i0, i1) read (conv1: 28 instead of
// 147 floats per output pixel).

/** Band floats: WGRAD_PIXELS im2col rows' worth (a block's band is at most that). */
@inline function band_room(k: i32): i32 {
  return WGRAD_PIXELS * k;
}

// The transposed dW's bytes for k columns and oc channels (kk rows padded to 6, channels to 8).
@inline function band_acc_bytes(k: i32, oc: i32): usize {
  return <usize>((k + 5) / 6 * 6) * <usize>((oc + 7) & ~7) << 2;
}

// The transposed dW, the table of its columns' band offsets (u32 each) and
// the strip of a block's dY (ow >= WGRAD_PIXELS: one output row).
@inline function band_head_bytes(k: i32, oc: i32, ow: i32): usize {
  return band_acc_bytes(k, oc) + (<usize>((k + 5) / 6 * 6) << 2) + (<usize>max(WGRAD_PIXELS, ow) << 5);
}

// One tile of the transposed GEMM: acc[6 rows of `accRow` bytes] (8 floats
// each) += sum over the block's pixels of X (splat from p0..p5) x dY (nc of
// 8 lanes at `d`; `full`: all 8). Rows of `cols` pixels, `rows` of them: X
// moves `xstep` bytes a pixel and `xrow` a row, dY `dyb` and `dyrow`.
@inline function band_tile(
  full: bool, nc: i32, acc: usize, accRow: usize,
  p0: usize, p1: usize, p2: usize, p3: usize, p4: usize, p5: usize,
  xstep: usize, xrow: usize, d: usize, dyb: usize, dyrow: usize, rows: i32, cols: i32,
): void {
  const a1 = acc + accRow, a2 = a1 + accRow, a3 = a2 + accRow, a4 = a3 + accRow, a5 = a4 + accRow;
  let c00 = v128.load(acc), c01 = v128.load(acc, 16);
  let c10 = v128.load(a1), c11 = v128.load(a1, 16);
  let c20 = v128.load(a2), c21 = v128.load(a2, 16);
  let c30 = v128.load(a3), c31 = v128.load(a3, 16);
  let c40 = v128.load(a4), c41 = v128.load(a4, 16);
  let c50 = v128.load(a5), c51 = v128.load(a5, 16);
  for (let r = 0; r < rows; r++) {
    // One pointer per splat row (see wgrad_tile), two pixels per trip of a constant-count loop.
    const off = <usize>r * xrow;
    let q0 = p0 + off, q1 = p1 + off, q2 = p2 + off, q3 = p3 + off, q4 = p4 + off, q5 = p5 + off;
    let dp = d + <usize>r * dyrow;
    let b0: v128, b1: v128, va: v128;
    let left = cols;
    while (left >= 2) {
      for (let u = 0; u < 2; u++) {
        b0 = full ? v128.load(dp) : load_lo_n(dp, nc);
        b1 = full ? v128.load(dp, 16) : load_hi_n(dp, nc);
        dp += dyb;
        va = v128.load32_splat(q0);
        c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
        va = v128.load32_splat(q1);
        c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
        va = v128.load32_splat(q2);
        c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
        va = v128.load32_splat(q3);
        c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
        va = v128.load32_splat(q4);
        c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
        va = v128.load32_splat(q5);
        c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
        q0 += xstep; q1 += xstep; q2 += xstep; q3 += xstep; q4 += xstep; q5 += xstep;
      }
      left -= 2;
    }
    if (left > 0) {
      b0 = full ? v128.load(dp) : load_lo_n(dp, nc);
      b1 = full ? v128.load(dp, 16) : load_hi_n(dp, nc);
      va = v128.load32_splat(q0);
      c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
      va = v128.load32_splat(q1);
      c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
      va = v128.load32_splat(q2);
      c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
      va = v128.load32_splat(q3);
      c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
      va = v128.load32_splat(q4);
      c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
      va = v128.load32_splat(q5);
      c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
    }
  }
  v128.store(acc, c00); v128.store(acc, c01, 16);
  v128.store(a1, c10); v128.store(a1, c11, 16);
  v128.store(a2, c20); v128.store(a2, c21, 16);
  v128.store(a3, c30); v128.store(a3, c31, 16);
  v128.store(a4, c40); v128.store(a4, c41, 16);
  v128.store(a5, c50); v128.store(a5, c51, 16);
}

// All channel tiles [o0, o1) x the `nq` (a multiple of 6) kk columns of
// one block: the tile of channels o0 + 8t and columns [6u, 6u + 6) at acc +
// t * accTile + 6u * 32, its X at band + the offsets at tab[6u .. 6u + 6).
// Each channel tile's dY (the block's rows * cols pixels, consecutive in dY)
// is first copied to `strip`, 32 bytes a pixel: read in place, 256 bytes
// apart (conv1's 64 channels), a block's pixels map to 16 of L1's 64 sets
// and evict each other between the column tiles that reuse them.
// Not inlined: one copy of the tile loops.
function band_block(
  acc: usize, accTile: usize, band: usize, tab: usize, nq: i32, o0: i32, o1: i32, strip: usize,
  xstep: usize, xrow: usize, d: usize, dyb: usize, rows: i32, cols: i32,
): void {
  for (let o = o0; o < o1; o += 8) {
    copy_strip(strip, d + (<usize>o << 2), dyb, rows * cols, min(8, o1 - o));
    const col = acc + <usize>((o - o0) >> 3) * accTile;
    for (let q = 0; q < nq; q += 6) {
      const t = tab + (<usize>q << 2);
      band_tile(
        true, 8, col + (<usize>q << 5), 32,
        band + <usize>load<u32>(t), band + <usize>load<u32>(t, 4), band + <usize>load<u32>(t, 8),
        band + <usize>load<u32>(t, 12), band + <usize>load<u32>(t, 16), band + <usize>load<u32>(t, 20),
        xstep, xrow, strip, 32, <usize>cols << 5, rows, cols,
      );
    }
  }
}

@inline function wgrad_band(
  x: usize, xstride: i32, n: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  dy: usize, dyb: usize, dw: usize, ldw: usize, acc: usize, band: usize,
  o0: i32, o1: i32, q0: i32, q1: i32,
): void {
  const xb = <usize>xstride << 2;
  const rowCols = kw * c;
  const i0 = q0 / rowCols, i1 = (q1 - 1) / rowCols + 1;
  // Channel tiles of 8: acc[(o - o0) / 8][kk - q0][(o - o0) % 8] = dw[o][kk], kk padded to nq.
  const nq = (q1 - q0 + 5) / 6 * 6;
  const accTile = <usize>nq << 5;
  const tab = acc + band_acc_bytes(q1 - q0, o1 - o0), strip = tab + (<usize>nq << 2);
  // Zeros first in the padding (never written back): no stale denormals or NaN to slow the steps.
  zero_floats(acc, <i32>(band_acc_bytes(q1 - q0, o1 - o0) >> 2));
  for (let o = o0; o < o1; o++) {
    const src = dw + <usize>o * ldw;
    const dst = acc + <usize>((o - o0) >> 3) * accTile + (<usize>((o - o0) & 7) << 2);
    for (let q = q0; q < q1; q++) store<f32>(dst + (<usize>(q - q0) << 5), load<f32>(src + (<usize>q << 2)));
  }
  const room = band_room(kh * kw * c);
  let bRows = max(1, WGRAD_PIXELS / ow), bCols = ow;
  while (bRows > 1 && ((bRows - 1) * sh + kh) * ((ow - 1) * sw + kw) * c > room) bRows--;
  if (kh * ((ow - 1) * sw + kw) * c > room) {
    bCols = max(1, min(ow, ((room / (kh * c) - kw) / sw) + 1));
  }
  for (let img = 0; img < n; img++) {
    const ximg = x + <usize>img * <usize>h * <usize>w * xb;
    for (let oy0 = 0; oy0 < oh; oy0 += bRows) {
      const rows = min(bRows, oh - oy0);
      for (let ox0 = 0; ox0 < ow; ox0 += bCols) {
        const cols = min(bCols, ow - ox0);
        const bandW = (cols - 1) * sw + kw, rowF = bandW * c;
        const rowBytes = <usize>rowF << 2;
        // Band rows [i0, (rows - 1) * sh + i1): input row oy0 * sh - ph + br, columns from ox0 * sw - pw.
        const ix0 = ox0 * sw - pw;
        const left = min(max(-ix0, 0), bandW);
        const inside = max(0, min(bandW, w - ix0) - left);
        for (let br = i0, brEnd = (rows - 1) * sh + i1; br < brEnd; br++) {
          const iy = oy0 * sh - ph + br;
          let dst = band + <usize>br * rowBytes;
          if (<u32>iy >= <u32>h) {
            zero_floats(dst, rowF);
            continue;
          }
          zero_floats(dst, left * c);
          dst += <usize>(left * c) << 2;
          const src = ximg + (<usize>iy * <usize>w + <usize>(ix0 + left)) * xb;
          if (xstride == c) {
            copy_floats(dst, src, inside * c);
          } else {
            for (let j = 0; j < inside; j++) copy_floats(dst + (<usize>(j * c) << 2), src + <usize>j * xb, c);
          }
          dst += <usize>(inside * c) << 2;
          zero_floats(dst, (bandW - left - inside) * c);
        }
        // X of column kk at the block's first pixel: kernel row kk / rowCols, in it kk % rowCols.
        // Columns past q1 (acc's padding) repeat the last one's.
        for (let t = 0; t < nq; t++) {
          const kk = min(q0 + t, q1 - 1), i = kk / rowCols;
          store<u32>(tab + (<usize>t << 2), <u32>(<usize>i * rowBytes + (<usize>(kk - i * rowCols) << 2)));
        }
        band_block(
          acc, accTile, band, tab, nq, o0, o1, strip, <usize>(sw * c) << 2, <usize>sh * rowBytes,
          dy + <usize>((img * oh + oy0) * ow + ox0) * dyb, dyb, rows, cols,
        );
      }
    }
  }
  for (let o = o0; o < o1; o++) {
    const dst = dw + <usize>o * ldw;
    const src = acc + <usize>((o - o0) >> 3) * accTile + (<usize>((o - o0) & 7) << 2);
    for (let q = q0; q < q1; q++) store<f32>(dst + (<usize>q << 2), load<f32>(src + (<usize>(q - q0) << 5)));
  }
}

/**
 * The weight gradient of a convolution, accumulated:
 * dw[o, kk] += sum over images img < n and output pixels (oy, ox) of
 * dy[(img * oh + oy) * ow + ox, o] * x[img, oy * sh - ph + i, ox * sw - pw + j, ch]
 * (zero outside the input), kk = (i * kw + j) * c + ch, for rows o in
 * [o0, o1) and columns kk in [q0, q1) of the dense row-major dw [oc, kh*kw*c].
 * x: NHWC (`xstride` floats per pixel); dy: [n * oh * ow, oc] (`dystride`).
 * scratch: `conv2d_weight_grad_scratch_bytes(c, kh, kw, ow, oc)` bytes owned
 * by the calling thread. A linear layer is h = w = oh = ow = kh = kw = 1,
 * n = batch rows, c = in features. Every element sums its pixels in
 * ascending order starting from dw, so any split into chunks is bit-identical.
 */
export function conv2d_weight_grad(
  x: usize, xstride: i32, n: i32, h: i32, w: i32, c: i32,
  kh: i32, kw: i32, sh: i32, sw: i32, ph: i32, pw: i32, oh: i32, ow: i32,
  dy: usize, dystride: i32, oc: i32, dw: usize, scratch: usize,
  o0: i32, o1: i32, q0: i32, q1: i32,
): void {
  if (o0 >= o1 || q0 >= q1 || n <= 0 || oh <= 0 || ow <= 0) return;
  const k = kh * kw * c;
  const ldw = <usize>k << 2, xb = <usize>xstride << 2, dyb = <usize>dystride << 2;
  const pack = scratch;
  const tmp = scratch + (<usize>max(WGRAD_PIXELS, ow) * <usize>oc << 2);
  const band = wgrad_band_path(c);
  const dense = !band && kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 &&
    oh == h && ow == w;
  const strip = tmp + TMP_BYTES;
  if (dense) {
    const pixels = n * oh * ow;
    for (let m0 = 0; m0 < pixels; m0 += WGRAD_PIXELS) {
      const count = min(WGRAD_PIXELS, pixels - m0);
      pack_dy(dy, dyb, m0, count, o0, o1, pack);
      // Each column tile runs on its copy (see STRIP_BYTES).
      for (let q = q0; q < q1; q += 8) {
        const nc = min(8, q1 - q);
        copy_strip(strip, x + <usize>m0 * xb + (<usize>q << 2), xb, count, nc);
        wgrad_span(nc, dw, ldw, <usize>q << 2, o0, o1, pack, count, tmp, strip, 32);
      }
    }
    return;
  }
  if (band) {
    wgrad_band(
      x, xstride, n, h, w, c, kh, kw, sh, sw, ph, pw, oh, ow, dy, dyb, dw, ldw,
      scratch, scratch + band_head_bytes(k, oc, ow), o0, o1, q0, q1,
    );
    return;
  }
  // Direct: blocks of whole output rows, each tap's columns read from the input.
  // Short rows (`gathered`): per tap, the block's pixels inside the input are
  // gathered (dY into the pack, each 8 channels of X into the strip) and run
  // as one span, the same pixels in the same order as the rows would take.
  const blockRows = max(1, WGRAD_PIXELS / ow);
  const allRows = n * oh;
  const rowBytes = <usize>w * xb;
  const gathered = ow < GATHER_BELOW;
  for (let r0 = 0; r0 < allRows; r0 += blockRows) {
    const rows = min(blockRows, allRows - r0);
    const count = rows * ow;
    if (!gathered) pack_dy(dy, dyb, r0 * ow, count, o0, o1, pack);
    for (let tap = q0 / c, last = (q1 - 1) / c; tap <= last; tap++) {
      const i = tap / kw, j = tap - i * kw;
      // Output columns whose input column ox * sw - pw + j lies in [0, w).
      const oxLo = j >= pw ? 0 : (pw - j + sw - 1) / sw;
      const oxHi = min(ow, w - 1 + pw - j >= 0 ? (w - 1 + pw - j) / sw + 1 : 0);
      if (oxLo >= oxHi) continue;
      const chLo = max(q0 - tap * c, 0), chHi = min(q1 - tap * c, c);
      if (gathered) {
        const span = oxHi - oxLo;
        let valid = 0;
        for (let r = 0; r < rows; r++) {
          const row = r0 + r, img = row / oh;
          if (<u32>((row - img * oh) * sh - ph + i) < <u32>h) valid++;
        }
        if (valid == 0) continue;
        const cnt = valid * span;
        for (let r = 0, at = 0; r < rows; r++) {
          const row = r0 + r, img = row / oh;
          if (<u32>((row - img * oh) * sh - ph + i) >= <u32>h) continue;
          pack_dy_span(dy, dyb, row * ow + oxLo, span, o0, o1, pack, cnt, at);
          at += span;
        }
        for (let ch = chLo; ch < chHi; ch += 8) {
          const nc = min(8, chHi - ch);
          let dst = strip;
          for (let r = 0; r < rows; r++) {
            const row = r0 + r, img = row / oh;
            const iy = (row - img * oh) * sh - ph + i;
            if (<u32>iy >= <u32>h) continue;
            const src = x + (<usize>img * <usize>h + <usize>iy) * rowBytes +
              <usize>(<isize>(oxLo * sw - pw + j) * <isize>xb) + (<usize>ch << 2);
            copy_strip(dst, src, <usize>sw * xb, span, nc);
            dst += <usize>span << 5;
          }
          wgrad_span(nc, dw, ldw, (<usize>(tap * c + ch)) << 2, o0, o1, pack, cnt, tmp, strip, 32);
        }
        continue;
      }
      // X at pixel (img, iy, 0) + the row's offset: column oxLo, channel ch.
      const shift = (<isize>(oxLo * sw - pw + j) * <isize>xb);
      for (let ch = chLo; ch < chHi; ch += 8) {
        const nc = min(8, chHi - ch);
        wgrad_rows(
          nc, dw, ldw, (<usize>(tap * c + ch)) << 2, o0, o1, pack, count,
          true, false, tmp, <usize>(<isize>x + shift) + (<usize>ch << 2), <usize>sw * xb,
          oh, ow, h, rowBytes, sh, ph, i, r0, rows, oxLo, oxHi,
        );
      }
    }
  }
}

/**
 * The bias gradient, accumulated: db[o] += sum over pixels p in [0, pixels)
 * of dy[p, o] (summed in ascending p, then added), for o in [o0, o1).
 * dy: `dystride` floats per pixel.
 */
export function bias_grad(dy: usize, dystride: i32, pixels: i32, db: usize, o0: i32, o1: i32): void {
  const dyb = <usize>dystride << 2;
  let o = o0;
  for (; o + 16 <= o1; o += 16) {
    let s0 = f32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    let p = dy + (<usize>o << 2);
    for (let i = 0; i < pixels; i++, p += dyb) {
      s0 = f32x4.add(s0, v128.load(p));
      s1 = f32x4.add(s1, v128.load(p, 16));
      s2 = f32x4.add(s2, v128.load(p, 32));
      s3 = f32x4.add(s3, v128.load(p, 48));
    }
    const q = db + (<usize>o << 2);
    v128.store(q, f32x4.add(v128.load(q), s0));
    v128.store(q, f32x4.add(v128.load(q, 16), s1), 16);
    v128.store(q, f32x4.add(v128.load(q, 32), s2), 32);
    v128.store(q, f32x4.add(v128.load(q, 48), s3), 48);
  }
  for (; o + 4 <= o1; o += 4) {
    let s = f32x4.splat(0);
    let p = dy + (<usize>o << 2);
    for (let i = 0; i < pixels; i++, p += dyb) s = f32x4.add(s, v128.load(p));
    const q = db + (<usize>o << 2);
    v128.store(q, f32x4.add(v128.load(q), s));
  }
  for (; o < o1; o++) {
    let s: f32 = 0;
    let p = dy + (<usize>o << 2);
    for (let i = 0; i < pixels; i++, p += dyb) s += load<f32>(p);
    const q = db + (<usize>o << 2);
    store<f32>(q, load<f32>(q) + s);
  }
}
