// Weight and bias gradients of 1x1 stride-1 convolutions and linear layers:
//   dW[o, q] += sum_m dY[m, o] * X[m, q],   db[o] += sum_m dY[m, o],
// a GEMM whose reduction runs over the pixels m (the batch rows of a linear
// layer). The register tile is the forward's 6 x 8 (12 accumulators, 6
// splats and 2 vector loads per pixel, two pixels per trip of a constant-count
// inner loop: see asm/gemm.ts for why on Intel under Deno), and every element
// starts from dW and takes the pixels in ascending order, as
// `conv2d_weight_grad` does: any split into (o, q) chunks, and either
// orientation below, gives the same bits as that kernel.
//
// Pixels go in blocks. Two orientations, chosen per chunk by shape:
//   rows    tile rows are output channels (dY packed by 6-row tiles per
//           block), columns 8 input channels (X's column tile copied into a
//           strip, 32 bytes per pixel): the column tile outer, the row tiles
//           inner. With few pixels in all (a linear layer's batch), every
//           strip of the block is copied first and the row tiles go outer:
//           dW is then read and written row by row, one pass (it is 8 MB
//           for aux1.fc1, the transfer that bounds that kernel).
//   columns few output channels (GoogLeNet's 16 to 48): tile rows are input
//           channels (X packed by 6-channel tiles), columns 8 output channels
//           read from dY in place; the accumulators live in a transposed copy
//           of the chunk's dW in scratch, made at the start and written back
//           at the end (the same operations per element, so the same bits).
// The bias gradient is summed per block while the block's dY is in cache
// (running sums in scratch, added to db at the end: bias_grad's additions in
// its order), instead of another pass over all of dY.

import { pack_dy } from "./conv_grad";
import { load_hi_n, load_lo_n, madd, store_n } from "./simd";

/** Pixels per block (rows orientation): the strip (8 KB) stays in L1, the packed dY in L2. */
const BLOCK: i32 = 256;
/** At most this many pixels in all: the block's strips are copied first and dW is walked row by row. */
const SHORT: i32 = 64;
/** At most this many output channels in a chunk: the columns orientation. */
const NARROW: i32 = 32;
/** Bytes of packed X per block in the columns orientation (kept in L2 while it is reread). */
const COLUMNS_PACK_BYTES: i32 = 256 * 1024;

@inline function round8(n: i32): i32 {
  return (n + 7) & ~7;
}

/**
 * Whether a chunk of `rows` output channels and `cols` input channels of a layer of `oc` output
 * channels goes by the columns orientation: only a layer's of at most NARROW output channels, the
 * ones whose scratch (`gemm_weight_grad_scratch_bytes`) has room for its transposed dW.
 */
@inline function by_columns(rows: i32, cols: i32, pixels: i32, oc: i32): bool {
  return oc <= NARROW && rows <= NARROW && cols >= 4 * rows && cols <= 2048 && pixels > SHORT;
}

/** Pixels per block of the columns orientation for `cols` input channels (even, 32 to BLOCK). */
@inline function columns_block(cols: i32): i32 {
  return min(BLOCK, max(32, (COLUMNS_PACK_BYTES / (cols << 2)) & ~1));
}

/**
 * Scratch bytes one thread needs for `gemm_weight_grad` on c input and oc
 * output channels: a block of packed dY (or X), the strips, the bias sums,
 * a partial tile's copy and, for few output channels, the transposed dW.
 */
export function gemm_weight_grad_scratch_bytes(c: i32, oc: i32): usize {
  const rows = (<usize>BLOCK * <usize>oc + <usize>max(BLOCK * 8, SHORT * round8(c))) << 2;
  let bytes = rows;
  if (oc <= NARROW) {
    const columns = <usize>COLUMNS_PACK_BYTES + (<usize>(c + 8) * <usize>round8(oc) << 2) +
      (<usize>BLOCK << 5);
    bytes = max(bytes, columns);
  }
  return bytes + (<usize>(oc + 8) << 2) + 6 * 8 * 4;
}

// One tile: mr rows (a constant after inlining) x 8 columns of accumulators
// at d (rows `ld` bytes apart), += sum over `count` pixels of the packed
// values at pk (mr floats per pixel) times the 8 floats at b (`bstep` bytes
// per pixel). Row pointers bumped per pixel (no constant offsets), two
// pixels per trip of a constant-count loop, an odd last one after.
@inline function grad_tile(
  mr: i32, d: usize, ld: usize, pk: usize, b: usize, bstep: usize, count: i32,
): void {
  const d1 = d + ld, d2 = d1 + ld, d3 = d2 + ld, d4 = d3 + ld, d5 = d4 + ld;
  const z = f32x4.splat(0);
  let c00 = v128.load(d), c01 = v128.load(d, 16);
  let c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
  if (mr > 1) { c10 = v128.load(d1); c11 = v128.load(d1, 16); }
  if (mr > 2) { c20 = v128.load(d2); c21 = v128.load(d2, 16); }
  if (mr > 3) { c30 = v128.load(d3); c31 = v128.load(d3, 16); }
  if (mr > 4) { c40 = v128.load(d4); c41 = v128.load(d4, 16); }
  if (mr > 5) { c50 = v128.load(d5); c51 = v128.load(d5, 16); }
  const step = <usize>mr << 2;
  let q0 = pk, q1 = pk + 4, q2 = pk + 8, q3 = pk + 12, q4 = pk + 16, q5 = pk + 20;
  let b0: v128, b1: v128, va: v128;
  const end = b + <usize>(count >> 1) * (bstep << 1);
  while (b < end) {
    for (let u = 0; u < 2; u++) {
      b0 = v128.load(b);
      b1 = v128.load(b, 16);
      b += bstep;
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
      q0 += step; q1 += step; q2 += step; q3 += step; q4 += step; q5 += step;
    }
  }
  if (count & 1) {
    b0 = v128.load(b);
    b1 = v128.load(b, 16);
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
  }
  v128.store(d, c00); v128.store(d, c01, 16);
  if (mr > 1) { v128.store(d1, c10); v128.store(d1, c11, 16); }
  if (mr > 2) { v128.store(d2, c20); v128.store(d2, c21, 16); }
  if (mr > 3) { v128.store(d3, c30); v128.store(d3, c31, 16); }
  if (mr > 4) { v128.store(d4, c40); v128.store(d4, c41, 16); }
  if (mr > 5) { v128.store(d5, c50); v128.store(d5, c51, 16); }
}

// grad_tile at mr rows: one copy of each tile for every caller (a strip's
// 32-byte step or dY's in place).
function row_tile(mr: i32, d: usize, ld: usize, pk: usize, b: usize, bstep: usize, count: i32): void {
  if (mr == 6) grad_tile(6, d, ld, pk, b, bstep, count);
  else if (mr == 4) grad_tile(4, d, ld, pk, b, bstep, count);
  else if (mr == 2) grad_tile(2, d, ld, pk, b, bstep, count);
  else grad_tile(1, d, ld, pk, b, bstep, count);
}

/** Rows of the tile at row `o` of [o0, o1): 6, then 4, 2, 1 (pack_dy's order). */
@inline function tile_rows(o: i32, o1: i32): i32 {
  const left = o1 - o;
  return left >= 6 ? 6 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
}

// strip[p, 0..8) = src[p, 0..nc) and zeros after, for p < count (`sb` bytes per pixel).
function copy_strip_n(strip: usize, src: usize, sb: usize, count: i32, nc: i32): void {
  if (nc == 8) {
    for (let p = 0; p < count; p++, strip += 32, src += sb) {
      v128.store(strip, v128.load(src));
      v128.store(strip, v128.load(src, 16), 16);
    }
  } else {
    for (let p = 0; p < count; p++, strip += 32, src += sb) {
      v128.store(strip, load_lo_n(src, nc));
      v128.store(strip, load_hi_n(src, nc), 16);
    }
  }
}

// The running bias sums: sums[o - o0] += dy[m, o] for m in [m0, m0 + count), ascending.
function add_bias_sums(dy: usize, dyb: usize, m0: i32, count: i32, o0: i32, o1: i32, sums: usize): void {
  const base = dy + <usize>m0 * dyb;
  let o = o0;
  for (; o + 16 <= o1; o += 16) {
    const s = sums + (<usize>(o - o0) << 2);
    let s0 = v128.load(s), s1 = v128.load(s, 16), s2 = v128.load(s, 32), s3 = v128.load(s, 48);
    let p = base + (<usize>o << 2);
    for (let i = 0; i < count; i++, p += dyb) {
      s0 = f32x4.add(s0, v128.load(p));
      s1 = f32x4.add(s1, v128.load(p, 16));
      s2 = f32x4.add(s2, v128.load(p, 32));
      s3 = f32x4.add(s3, v128.load(p, 48));
    }
    v128.store(s, s0); v128.store(s, s1, 16); v128.store(s, s2, 32); v128.store(s, s3, 48);
  }
  for (; o + 4 <= o1; o += 4) {
    const s = sums + (<usize>(o - o0) << 2);
    let s0 = v128.load(s);
    let p = base + (<usize>o << 2);
    for (let i = 0; i < count; i++, p += dyb) s0 = f32x4.add(s0, v128.load(p));
    v128.store(s, s0);
  }
  for (; o < o1; o++) {
    const s = sums + (<usize>(o - o0) << 2);
    let s0 = load<f32>(s);
    let p = base + (<usize>o << 2);
    for (let i = 0; i < count; i++, p += dyb) s0 += load<f32>(p);
    store<f32>(s, s0);
  }
}

// The rows orientation on pixels [m0, m0 + count): see the top.
function rows_block(
  x: usize, xb: usize, dy: usize, dyb: usize, dw: usize, ldw: usize, pack: usize,
  strips: usize, tmp: usize, m0: i32, count: i32, o0: i32, o1: i32, q0: i32, q1: i32, short: bool,
): void {
  pack_dy(dy, dyb, m0, count, o0, o1, pack);
  const xm = x + <usize>m0 * xb;
  if (short) {
    // Every strip first, then dW row tile by row tile, each row walked once.
    for (let q = q0; q < q1; q += 8) {
      copy_strip_n(strips + (<usize>(q - q0) * <usize>count << 2), xm + (<usize>q << 2), xb, count, min(8, q1 - q));
    }
    for (let o = o0; o < o1;) {
      const mr = tile_rows(o, o1);
      const pk = pack + (<usize>(o - o0) * <usize>count << 2);
      const d = dw + <usize>o * ldw;
      for (let q = q0; q < q1; q += 8) {
        const strip = strips + (<usize>(q - q0) * <usize>count << 2);
        column_tile(mr, d + (<usize>q << 2), ldw, pk, strip, count, min(8, q1 - q), tmp);
      }
      o += mr;
    }
    return;
  }
  for (let q = q0; q < q1; q += 8) {
    const nc = min(8, q1 - q);
    copy_strip_n(strips, xm + (<usize>q << 2), xb, count, nc);
    for (let o = o0; o < o1;) {
      const mr = tile_rows(o, o1);
      column_tile(
        mr, dw + <usize>o * ldw + (<usize>q << 2), ldw, pack + (<usize>(o - o0) * <usize>count << 2),
        strips, count, nc, tmp,
      );
      o += mr;
    }
  }
}

// One tile of mr rows at d (rows ld bytes apart) on a strip; a partial column
// tile (nc < 8) runs on a copy of its nc columns, zeros after them.
@inline function column_tile(
  mr: i32, d: usize, ld: usize, pk: usize, strip: usize, count: i32, nc: i32, tmp: usize,
): void {
  if (nc == 8) {
    row_tile(mr, d, ld, pk, strip, 32, count);
    return;
  }
  for (let r = 0; r < mr; r++) {
    const src = d + <usize>r * ld, dst = tmp + (<usize>r << 5);
    v128.store(dst, load_lo_n(src, nc));
    v128.store(dst, load_hi_n(src, nc), 16);
  }
  row_tile(mr, tmp, 32, pk, strip, 32, count);
  for (let r = 0; r < mr; r++) {
    const src = tmp + (<usize>r << 5);
    store_n(d + <usize>r * ld, v128.load(src), v128.load(src, 16), nc);
  }
}

// The columns orientation (see the top) for rows [o0, o1), columns [q0, q1):
// dWt[q - q0, o - o0] in scratch, `ldt` bytes per row.
function columns_chunk(
  x: usize, xb: usize, pixels: i32, dy: usize, dyb: usize, dw: usize, ldw: usize,
  dwt: usize, pack: usize, strip: usize, sums: usize, bias: bool,
  o0: i32, o1: i32, q0: i32, q1: i32,
): void {
  const rows = o1 - o0, ldt = <usize>round8(rows) << 2;
  for (let q = q0; q < q1; q++) {
    const t = dwt + <usize>(q - q0) * ldt;
    for (let o = o0; o < o1; o++) store<f32>(t + (<usize>(o - o0) << 2), load<f32>(dw + <usize>o * ldw + (<usize>q << 2)));
  }
  const block = columns_block(q1 - q0);
  for (let m0 = 0; m0 < pixels; m0 += block) {
    const count = min(block, pixels - m0);
    pack_dy(x, xb, m0, count, q0, q1, pack);
    if (bias) add_bias_sums(dy, dyb, m0, count, o0, o1, sums);
    const dym = dy + <usize>m0 * dyb;
    for (let o = o0; o < o1; o += 8) {
      const nc = min(8, o1 - o);
      let b = dym + (<usize>o << 2), bstep = dyb;
      if (nc < 8) {
        copy_strip_n(strip, b, dyb, count, nc);
        b = strip;
        bstep = 32;
      }
      const d = dwt + (<usize>(o - o0) << 2);
      for (let q = q0; q < q1;) {
        const mr = tile_rows(q, q1);
        row_tile(mr, d + <usize>(q - q0) * ldt, ldt, pack + (<usize>(q - q0) * <usize>count << 2), b, bstep, count);
        q += mr;
      }
    }
  }
  for (let q = q0; q < q1; q++) {
    const t = dwt + <usize>(q - q0) * ldt;
    for (let o = o0; o < o1; o++) store<f32>(dw + <usize>o * ldw + (<usize>q << 2), load<f32>(t + (<usize>(o - o0) << 2)));
  }
}

/**
 * The weight (and bias) gradient of a 1x1 stride-1 convolution or a linear
 * layer, accumulated: dw[o, q] += sum over pixels m < `pixels` of
 * dy[m, o] * x[m, q] for rows o in [o0, o1) and columns q in [q0, q1) of the
 * dense row-major dw [oc, c], and when `db` is not 0, db[o] += sum_m dy[m, o]
 * (summed from zero in ascending m, then added) for o in [o0, o1). x: `xstride`
 * floats per pixel; dy: `dystride`. scratch:
 * `gemm_weight_grad_scratch_bytes(c, oc)` bytes owned by the calling thread.
 * The bits of `conv2d_weight_grad` (h = w = oh = ow = 1, n = pixels) and
 * `bias_grad`, for any split into chunks.
 */
export function gemm_weight_grad(
  x: usize, xstride: i32, pixels: i32, c: i32, dy: usize, dystride: i32, oc: i32,
  dw: usize, db: usize, scratch: usize, o0: i32, o1: i32, q0: i32, q1: i32,
): void {
  if (o0 >= o1 || q0 >= q1 || pixels <= 0) return;
  const ldw = <usize>c << 2, xb = <usize>xstride << 2, dyb = <usize>dystride << 2;
  const bias = db != 0;
  const rows = o1 - o0;
  // Scratch: bias sums, a partial tile's copy, then the orientation's own.
  const sums = scratch;
  const tmp = sums + (<usize>(oc + 8) << 2);
  const rest = tmp + 6 * 8 * 4;
  if (bias) memory.fill(sums, 0, <usize>rows << 2);
  if (by_columns(rows, q1 - q0, pixels, oc)) {
    const pack = rest, strip = pack + <usize>COLUMNS_PACK_BYTES, dwt = strip + (<usize>BLOCK << 5);
    columns_chunk(x, xb, pixels, dy, dyb, dw, ldw, dwt, pack, strip, sums, bias, o0, o1, q0, q1);
  } else {
    const pack = rest, strips = pack + (<usize>BLOCK * <usize>oc << 2);
    const short = pixels <= SHORT;
    for (let m0 = 0; m0 < pixels; m0 += BLOCK) {
      const count = min(BLOCK, pixels - m0);
      if (bias) add_bias_sums(dy, dyb, m0, count, o0, o1, sums);
      rows_block(x, xb, dy, dyb, dw, ldw, pack, strips, tmp, m0, count, o0, o1, q0, q1, short);
    }
  }
  if (bias) {
    for (let o = o0; o < o1; o++) {
      const q = db + (<usize>o << 2);
      store<f32>(q, load<f32>(q) + load<f32>(sums + (<usize>(o - o0) << 2)));
    }
  }
}
