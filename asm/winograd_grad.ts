// The weight gradient of the stride-1 "same" 3x3 convolutions by Winograd's
// F(4x4, 3x3) (the backward-filter of cuDNN's WINOGRAD_NONFUSED), on the
// transforms of asm/winograd.ts. The forward is y = A^T [(G g G^T) . (B^T d B)] A
// per tile, so its weight gradient is
//   dW = G^T dU G,  dU[xi] = sum over tiles of V[xi]^T dM[xi],
// with V = B^T d B (the forward's input transform) and dM = A dY A^T (the
// adjoint of its output transform) for each of the 36 transform points xi.
// A call splits its output x input channels into blocks of near-equal size
// (at most OB x CB) and for each block
//   1. zeroes the block's dU (36 matrices, in scratch),
//   2. for each block of TB tiles: transforms the input patches (the block's
//      input channels) and the output-gradient tiles (its output channels)
//      straight into the layouts the GEMM reads (V in strips of 8 channels,
//      [tile][8]; dM in `pack_dy`'s panels of 6 output channels), then adds
//      dM^T V to dU by 36 GEMMs of depth TB on the register-tiled kernel of
//      `conv2d_weight_grad`,
//   3. adds G^T dU G to dw, per (o, c) pair in f64, two channels per f64x2.
// The 36 matrices of V and dM lie a cache line more than a multiple of 2 KB
// apart, so that a tile's 36 stores do not all fall into one L1 set (the first
// version's, 8 KB apart, did: 13-18 % of its time).
// Every dU element sums the tiles in ascending order from zero, so any split
// of the channels into calls (threads, chunks) or blocks gives the same bits.
// C and OC must be multiples of 4, o0 and c0 too.
// F(2x2, 3x3) by the same driver was measured too (GoogLeNet's layers, batch
// 16, one thread): it never beat F(4x4, 3x3), so it is not built. F(2x2, 5x5),
// within noise of the direct 5x5 kernel by this driver's first version, is
// built apart for the 5x5 layers' few channels (asm/winograd_grad5.ts).

import { wgrad_span } from "./conv_grad";
import { input_tiles } from "./winograd";

/** Output channels of a dU block at most (src/backend/wasm/executor.ts splits threads' chunks by it). */
const OB: i32 = 96;
/** Input channels of a dU block at most (a multiple of 8; the executor's too). */
const CB: i32 = 64;
/** Tiles transformed per GEMM pass: the GEMMs' depth. */
const TB: i32 = 64;

/** G (n x r f64), rounded up to a cache line. */
const G_BYTES: usize = 256;
/** The 6 x 8 dU copy a partial column tile of the GEMM runs on. */
const GEMM_TMP_BYTES: usize = 256;
/** Bytes added to each transform point's matrix so that the 36 do not map to one L1 set. */
const SKEW: usize = 64;

@inline function round8(c: i32): i32 {
  return (c + 7) & ~7;
}

/** Scratch bytes one thread needs for `winograd_f4x3_weight_grad`. */
export function winograd_weight_grad_scratch_bytes(): usize {
  const cbs = round8(CB);
  return G_BYTES + GEMM_TMP_BYTES + (<usize>(OB * 36 * cbs) << 2) +
    <usize>36 * ((<usize>(cbs * TB) << 2) + SKEW) + <usize>36 * ((<usize>(OB * TB) << 2) + SKEW);
}

// The interpolation point a (0, 1, -1, 2, -2 for a = 0..4).
@inline function point(a: i32): f64 {
  return a == 0 ? 0 : a == 1 ? 1 : a == 2 ? -1 : a == 3 ? 2 : -2;
}

// G (n x r) at g, as src/backend/pack.ts's winogradG: row a < n - 1 is
// point(a)^k / prod_{b != a} (point(a) - point(b)), the last row (infinity) picks k = r - 1.
@inline export function write_g(n: i32, r: i32, g: usize): void {
  for (let a = 0; a < n - 1; a++) {
    const pa = point(a);
    let norm: f64 = 1;
    for (let b = 0; b < n - 1; b++) if (b != a) norm *= pa - point(b);
    let power: f64 = 1;
    for (let k = 0; k < r; k++) {
      store<f64>(g + (<usize>(a * r + k) << 3), power / norm);
      power *= pa;
    }
  }
  for (let k = 0; k < r; k++) store<f64>(g + (<usize>((n - 1) * r + k) << 3), k == r - 1 ? 1 : 0);
}

// F(4, 3)'s A (6 x 4) on y0..y3: output k (a constant after inlining), the
// adjoint of A^T (`at6v` in asm/winograd.ts).
@inline function adjoint(k: i32, y0: v128, y1: v128, y2: v128, y3: v128): v128 {
  if (k == 0) return y0;
  if (k == 5) return y3;
  if (k == 1 || k == 2) {
    const e1 = f32x4.add(y0, y2), o1 = f32x4.add(y1, y3);
    return k == 1 ? f32x4.add(e1, o1) : f32x4.sub(e1, o1);
  }
  const e2 = f32x4.add(y0, f32x4.mul(f32x4.splat(4), y2));
  const o2 = f32x4.add(f32x4.add(y1, y1), f32x4.mul(f32x4.splat(8), y3));
  return k == 3 ? f32x4.add(e2, o2) : f32x4.sub(e2, o2);
}

// The dY vector at p, or zeros outside the tile's rows x cols.
@inline function dy_at(p: usize, inside: bool): v128 {
  return inside ? v128.load(p) : f32x4.splat(0);
}

// dM[a * 6 + b] of column b from the row pass's r0..r3 (of that column), to q + (a * 6 + b) * mMat:
// one vector, or (`split`) its two halves, the upper at q2 instead.
@inline function dy_column(
  split: bool, b: i32, r0: v128, r1: v128, r2: v128, r3: v128, q: usize, q2: usize, mMat: usize,
): void {
  for (let a = 0; a < 6; a++) {
    const v = adjoint(a, r0, r1, r2, r3);
    const at = <usize>(a * 6 + b) * mMat;
    if (split) {
      v128.store64_lane(q + at, v, 0);
      v128.store64_lane(q2 + at, v, 1);
    } else {
      v128.store(q + at, v);
    }
  }
}

// dM = A dY A^T for 4 output channels of one tile: dY's rows x cols (1..4)
// vectors at p (pixels dyb bytes apart, rows rowb), zeros past them. Rows
// first, then columns, through registers: the operations, in that order, of
// the first version of this kernel (which took the rows through a scratch tile).
@inline function dy_tile(
  split: bool, p: usize, dyb: usize, rowb: usize, rows: i32, cols: i32,
  q: usize, q2: usize, mMat: usize,
): void {
  const c1 = cols > 1, c2 = cols > 2, c3 = cols > 3;
  let y0 = v128.load(p), y1 = dy_at(p + dyb, c1), y2 = dy_at(p + 2 * dyb, c2), y3 = dy_at(p + 3 * dyb, c3);
  const r00 = adjoint(0, y0, y1, y2, y3), r01 = adjoint(1, y0, y1, y2, y3), r02 = adjoint(2, y0, y1, y2, y3);
  const r03 = adjoint(3, y0, y1, y2, y3), r04 = adjoint(4, y0, y1, y2, y3), r05 = adjoint(5, y0, y1, y2, y3);
  const z = f32x4.splat(0);
  let r10 = z, r11 = z, r12 = z, r13 = z, r14 = z, r15 = z;
  let r20 = z, r21 = z, r22 = z, r23 = z, r24 = z, r25 = z;
  let r30 = z, r31 = z, r32 = z, r33 = z, r34 = z, r35 = z;
  if (rows > 1) {
    p += rowb;
    y0 = v128.load(p); y1 = dy_at(p + dyb, c1); y2 = dy_at(p + 2 * dyb, c2); y3 = dy_at(p + 3 * dyb, c3);
    r10 = adjoint(0, y0, y1, y2, y3); r11 = adjoint(1, y0, y1, y2, y3); r12 = adjoint(2, y0, y1, y2, y3);
    r13 = adjoint(3, y0, y1, y2, y3); r14 = adjoint(4, y0, y1, y2, y3); r15 = adjoint(5, y0, y1, y2, y3);
  }
  if (rows > 2) {
    p += rowb;
    y0 = v128.load(p); y1 = dy_at(p + dyb, c1); y2 = dy_at(p + 2 * dyb, c2); y3 = dy_at(p + 3 * dyb, c3);
    r20 = adjoint(0, y0, y1, y2, y3); r21 = adjoint(1, y0, y1, y2, y3); r22 = adjoint(2, y0, y1, y2, y3);
    r23 = adjoint(3, y0, y1, y2, y3); r24 = adjoint(4, y0, y1, y2, y3); r25 = adjoint(5, y0, y1, y2, y3);
  }
  if (rows > 3) {
    p += rowb;
    y0 = v128.load(p); y1 = dy_at(p + dyb, c1); y2 = dy_at(p + 2 * dyb, c2); y3 = dy_at(p + 3 * dyb, c3);
    r30 = adjoint(0, y0, y1, y2, y3); r31 = adjoint(1, y0, y1, y2, y3); r32 = adjoint(2, y0, y1, y2, y3);
    r33 = adjoint(3, y0, y1, y2, y3); r34 = adjoint(4, y0, y1, y2, y3); r35 = adjoint(5, y0, y1, y2, y3);
  }
  dy_column(split, 0, r00, r10, r20, r30, q, q2, mMat);
  dy_column(split, 1, r01, r11, r21, r31, q, q2, mMat);
  dy_column(split, 2, r02, r12, r22, r32, q, q2, mMat);
  dy_column(split, 3, r03, r13, r23, r33, q, q2, mMat);
  dy_column(split, 4, r04, r14, r24, r34, q, q2, mMat);
  dy_column(split, 5, r05, r15, r25, r35, q, q2, mMat);
}

// The dY transforms of one tile (rows x cols dY pixels, 1..4 each) for output
// channels [0, ob) of a block, into the GEMM's packed layout for `count` tiles
// (`pack_dy`'s: panels of 6 output channels, then one of 4 or 2; a panel at
// channel o starts at o * count floats and holds its width per tile): tile
// t's values at t * width. A group of 4 channels at a panel's lane 4
// straddles two panels.
function dy_tiles(
  p: usize, dyb: usize, rowb: usize, rows: i32, cols: i32, ob: i32, m: usize, count: i32, t: i32, mMat: usize,
): void {
  const full = ob - ob % 6, rest = ob - full;
  for (let og = 0; og < ob; og += 4, p += 16) {
    const lane = og < full ? og % 6 : 0, start = og - lane, width = og < full ? 6 : rest;
    const q = m + (<usize>(start * count + t * width + lane) << 2);
    if (lane == 4) {
      const q2 = m + (<usize>((start + 6) * count + t * (start + 6 < full ? 6 : rest)) << 2);
      dy_tile(true, p, dyb, rowb, rows, cols, q, q2, mMat);
    } else {
      dy_tile(false, p, dyb, rowb, rows, cols, q, q, mMat);
    }
  }
}

/**
 * The weight gradient of a 3x3 convolution (stride 1, padding 1) by F(4x4, 3x3),
 * accumulated: dw[o, (i * 3 + j) * c + ch] += sum over images img < n and
 * pixels (y, x) of dy[(img * h + y) * w + x, o] * x[img, y - 1 + i, x - 1 + j, ch]
 * for o in [o0, o1), ch in [c0, c1). x: NHWC (`xstride` floats per pixel);
 * dy: [n * h * w, oc] (`dystride`); dw: dense row-major [oc, 9 * c]. scratch:
 * `winograd_weight_grad_scratch_bytes()` bytes owned by the calling thread.
 * c, oc, o0 and c0 multiples of 4. Any split of [o0, o1) x [c0, c1) into calls gives the same bits.
 */
export function winograd_f4x3_weight_grad(
  x: usize, xstride: i32, n: i32, h: i32, w: i32, c: i32,
  dy: usize, dystride: i32, oc: i32, dw: usize, scratch: usize, o0: i32, o1: i32, c0: i32, c1: i32,
): void {
  weight_grad(x, xstride, n, h, w, c, dy, dystride, oc, dw, scratch, o0, o1, c0, c1);
}

// dw[o, (i * 3 + j) * c + ch] += (G^T dU G)[i][j] in f64 for the block's ob x cb
// pairs (dU: [o][xi][ch], rows uRow bytes apart, points uMat), two channels per
// f64x2: for each (o, ch) the operations of
//   t[i][b] = sum_a G[a][i] dU[a * 6 + b],  s[i][j] = sum_b t[i][b] G[b][j],
// each sum from 0 in ascending order (the second accumulated column by
// column). The first skips G's zeros (their products would add +-0: the same
// result for finite dU) and adds the term of its one unmultiplied; the second
// multiplies by every element of G, as the first version of this kernel did.
@inline function g_transform(
  g: usize, u: usize, uRow: usize, uMat: usize, ob: i32, cb: i32, dw: usize, ldw: usize, c: i32,
): void {
  const zero = f64x2.splat(0);
  const g00 = f64x2.splat(load<f64>(g)), g10 = f64x2.splat(load<f64>(g, 24));
  const g11 = f64x2.splat(load<f64>(g, 32)), g12 = f64x2.splat(load<f64>(g, 40));
  const g20 = f64x2.splat(load<f64>(g, 48)), g21 = f64x2.splat(load<f64>(g, 56));
  const g22 = f64x2.splat(load<f64>(g, 64)), g30 = f64x2.splat(load<f64>(g, 72));
  const g31 = f64x2.splat(load<f64>(g, 80)), g32 = f64x2.splat(load<f64>(g, 88));
  const g40 = f64x2.splat(load<f64>(g, 96)), g41 = f64x2.splat(load<f64>(g, 104));
  const g42 = f64x2.splat(load<f64>(g, 112));
  const tap = <usize>c << 2;
  for (let o = 0; o < ob; o++) {
    const row = u + <usize>o * uRow, drow = dw + <usize>o * ldw;
    for (let ch = 0; ch < cb; ch += 2) {
      let s00 = zero, s01 = zero, s02 = zero, s10 = zero, s11 = zero, s12 = zero;
      let s20 = zero, s21 = zero, s22 = zero;
      let q = row + (<usize>ch << 2), gb = g;
      for (let b = 0; b < 6; b++, q += uMat, gb += 24) {
        // Column b of dU through G^T: t0, t1, t2.
        const u0 = lu(q), u1 = lu(q + 6 * uMat), u2 = lu(q + 12 * uMat), u3 = lu(q + 18 * uMat);
        const u4 = lu(q + 24 * uMat), u5 = lu(q + 30 * uMat);
        const t0 = gb_sum(f64x2.add(zero, f64x2.mul(g00, u0)), g10, g20, g30, g40, u1, u2, u3, u4);
        const t1 = gb_sum(zero, g11, g21, g31, g41, u1, u2, u3, u4);
        const t2 = f64x2.add(gb_sum(zero, g12, g22, g32, g42, u1, u2, u3, u4), u5);
        // Row b of G: s[i][j] += t[i] G[b][j].
        const h0 = f64x2.splat(load<f64>(gb)), h1 = f64x2.splat(load<f64>(gb, 8));
        const h2 = f64x2.splat(load<f64>(gb, 16));
        s00 = f64x2.add(s00, f64x2.mul(t0, h0)); s01 = f64x2.add(s01, f64x2.mul(t0, h1));
        s02 = f64x2.add(s02, f64x2.mul(t0, h2));
        s10 = f64x2.add(s10, f64x2.mul(t1, h0)); s11 = f64x2.add(s11, f64x2.mul(t1, h1));
        s12 = f64x2.add(s12, f64x2.mul(t1, h2));
        s20 = f64x2.add(s20, f64x2.mul(t2, h0)); s21 = f64x2.add(s21, f64x2.mul(t2, h1));
        s22 = f64x2.add(s22, f64x2.mul(t2, h2));
      }
      const d = drow + (<usize>ch << 2);
      add_f64(d, s00); add_f64(d + tap, s01); add_f64(d + 2 * tap, s02);
      add_f64(d + 3 * tap, s10); add_f64(d + 4 * tap, s11); add_f64(d + 5 * tap, s12);
      add_f64(d + 6 * tap, s20); add_f64(d + 7 * tap, s21); add_f64(d + 8 * tap, s22);
    }
  }
}

// Two f32 of dU at p as f64x2.
@inline function lu(p: usize): v128 {
  return f64x2.promote_low_f32x4(v128.load64_zero(p));
}

// The two f32 at p = f32(f64(p[k]) + s[k]).
@inline function add_f64(p: usize, s: v128): void {
  v128.store64_lane(p, f32x4.demote_f64x2_zero(f64x2.add(lu(p), s)), 0);
}

// ((((z + a1 x1) + a2 x2) + a3 x3) + a4 x4) in f64x2 lanes.
@inline function gb_sum(
  z: v128, a1: v128, a2: v128, a3: v128, a4: v128, x1: v128, x2: v128, x3: v128, x4: v128,
): v128 {
  let s = f64x2.add(z, f64x2.mul(a1, x1));
  s = f64x2.add(s, f64x2.mul(a2, x2));
  s = f64x2.add(s, f64x2.mul(a3, x3));
  return f64x2.add(s, f64x2.mul(a4, x4));
}

// The driver (F(4x4, 3x3) only: n = 6 transform points, m = 4 output pixels, r = 3 taps a side).
@inline function weight_grad(
  x: usize, xstride: i32, nimg: i32, h: i32, w: i32, c: i32,
  dy: usize, dystride: i32, oc: i32, dw: usize, scratch: usize, o0: i32, o1: i32, c0: i32, c1: i32,
): void {
  if (o0 >= o1 || c0 >= c1 || nimg <= 0 || h <= 0 || w <= 0) return;
  const n = 6, m = 4, r = 3, pad = 1, nn = 36;
  const tilesW = (w + m - 1) / m, tilesH = (h + m - 1) / m, plane = tilesW * tilesH;
  const tiles = nimg * plane;
  const ob_max = OB, cb_max = CB, tb = TB;
  const g = scratch;
  const gemmTmp = g + G_BYTES;
  const cbs = round8(cb_max);
  // dU: [o][xi][ch], ob_max x 36 x cbs floats.
  const uBase = gemmTmp + GEMM_TMP_BYTES;
  const uMat = <usize>cbs << 2, uRow = <usize>nn * uMat;
  // V: per xi, strips of 8 channels, each [tile][8].
  const vBase = uBase + <usize>ob_max * uRow;
  const strip = <usize>tb << 5;
  const vMat = <usize>(cbs >> 3) * strip + SKEW;
  // dM: per xi, the packed panels of ob_max channels x tb tiles.
  const mBase = vBase + <usize>nn * vMat;
  const mMat = (<usize>(ob_max * tb) << 2) + SKEW;
  const xb = <usize>xstride << 2, dyb = <usize>dystride << 2;
  const rowb = <usize>w * xb, dyrowb = <usize>w * dyb;
  const ldw = <usize>(r * r * c) << 2;
  write_g(n, r, g);

  // Blocks of near-equal size (a multiple of 4 output and 8 input channels), at most OB x CB.
  const oBlocks = (o1 - o0 + ob_max - 1) / ob_max;
  const oStep = ((o1 - o0 + oBlocks - 1) / oBlocks + 3) & ~3;
  const cBlocks = (c1 - c0 + cb_max - 1) / cb_max;
  const cStep = ((c1 - c0 + cBlocks - 1) / cBlocks + 7) & ~7;
  for (let ob0 = o0; ob0 < o1; ob0 += oStep) {
    const ob = min(oStep, o1 - ob0);
    for (let cb0 = c0; cb0 < c1; cb0 += cStep) {
      const cb = min(cStep, c1 - cb0);
      memory.fill(uBase, 0, <usize>ob * uRow);
      for (let tStart = 0; tStart < tiles; tStart += tb) {
        const rows = min(tb, tiles - tStart);
        for (let t = 0; t < rows; t++) {
          const tile = tStart + t;
          const img = tile / plane, rem = tile - img * plane;
          const ty = rem / tilesW, tx = rem - ty * tilesW;
          // 1. V = B^T d B for channels [cb0, cb0 + cb), zeros outside the image, by strips of 8.
          const ximg = x + <usize>img * <usize>h * <usize>w * xb;
          const iy0 = ty * m - pad, ix0 = tx * m - pad;
          const interior = iy0 >= 0 && iy0 + n <= h && ix0 >= 0 && ix0 + n <= w;
          const p = ximg + <usize>((iy0 * w + ix0) * xstride + cb0) * 4;
          for (let s = 0; s < cb; s += 8) {
            input_tiles(
              n, p + (<usize>s << 2), xb, rowb, iy0, h, ix0, w, interior, min(8, cb - s),
              vBase + <usize>(s >> 3) * strip + (<usize>t << 5), vMat,
            );
          }
          // 2. dM = A dY A^T for channels [ob0, ob0 + ob), zeros outside the map, packed for the GEMM.
          const rowsOut = min(m, h - ty * m), cols = min(m, w - tx * m);
          const dyt = dy + (<usize>(img * h + ty * m) * <usize>w + <usize>(tx * m)) * dyb + (<usize>ob0 << 2);
          dy_tiles(dyt, dyb, dyrowb, rowsOut, cols, ob, mBase, rows, t, mMat);
        }
        // 3. dU[xi] += dM[xi]^T V[xi], tiles in ascending order.
        for (let xi = 0; xi < nn; xi++) {
          const u = uBase + <usize>xi * uMat, a = vBase + <usize>xi * vMat, pk = mBase + <usize>xi * mMat;
          for (let s = 0; s < cb; s += 8) {
            // Strips hold 8 floats per tile: a partial one may read 8 wide.
            wgrad_span(min(8, cb - s), u, uRow, <usize>s << 2, 0, ob, pk, rows, gemmTmp, a + <usize>(s >> 3) * strip, 32);
          }
        }
      }
      // 4. dw[o, (i * r + j) * c + ch] += (G^T dU G)[i][j] in f64.
      g_transform(g, uBase, uRow, uMat, ob, cb, dw + <usize>ob0 * ldw + (<usize>cb0 << 2), ldw, c);
    }
  }
}
