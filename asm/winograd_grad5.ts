// The weight gradient of the stride-1 "same" 5x5 convolutions by Winograd's
// F(2x2, 5x5), on the forward's 6x6 transforms (asm/winograd.ts, points 0,
// +-1, +-2, inf). As for F(4x4, 3x3) in asm/winograd_grad.ts:
//   dW = G^T dU G,  dU[xi] = sum over tiles of V[xi]^T dM[xi],
// V = B^T d B (the forward's input transform of a 6x6 patch), dM = A dY A^T
// (the adjoint of its output transform, here of a 2x2 tile) for each of the
// 36 transform points xi: 36 multiply-adds per 2x2 output tile and channel
// pair instead of the direct kernel's 100. GoogLeNet's 5x5 layers have few
// channels (16-48 in, 32-128 out), so a call takes up to OB x CB = 128 x 48
// of them in one dU block: each tile's patches and gradient tiles are
// transformed once per call, not once per 64 x 64 block as the 3x3 driver
// (whose layers have hundreds) does, and a GEMM pass takes as many tiles as
// PASS_BYTES hold (55 for inception3b's 32 x 96 channels, 148 for 3a's 16 x
// 32), not 32: fewer loads and stores of the dU accumulators per
// multiply-add. For each pass of tb tiles a call
//   1. transforms the input patches (V, CB channels) and the gradient tiles
//      (dM, OB channels),
//   2. adds dM^T V to dU by 36 GEMMs on the register-tiled kernel of
//      `conv2d_weight_grad`,
// and at the end adds G^T dU G to dw in f64 per (o, c) pair. Every dU
// element sums the tiles in ascending order from zero, so any split of the
// channels into calls (threads, chunks) gives the same bits.
// C and OC must be multiples of 4, o0 and c0 too.

import { pack_dy, wgrad_span } from "./conv_grad";
import { input_tiles } from "./winograd";
import { write_g } from "./winograd_grad";

/** Output channels of a dU block. */
const OB: i32 = 128;
/** Input channels of a dU block. */
const CB: i32 = 48;
/** Bytes of the transformed tiles of a GEMM pass (V, dM and dM packed): TB = this / bytes per tile. */
const PASS_BYTES: i32 = 1024 * 1024;
/** Most tiles per GEMM pass. */
const TB_MAX: i32 = 256;
/**
 * Added to each of the 36 matrices' size: they are written 36 at a time per
 * tile, and sizes that are multiples of 4 KiB would put those 36 lines in one of L1's sets.
 */
const SKEW: usize = 64;
/** G (6 x 5 f64) and G^T dU (5 x 6 f64x2: two channels). */
const G_BYTES: usize = 256 + 480;
/** 2 rows of 6 vectors: a gradient tile after its row pass (96 bytes per row). */
const TMP_BYTES: usize = 192;
/** The 6 x 8 dU copy a partial column tile of the GEMM runs on. */
const GEMM_TMP_BYTES: usize = 192;

/** Scratch bytes one thread needs for `winograd_f2x5_weight_grad`. */
export function winograd_f2x5_weight_grad_scratch_bytes(): usize {
  return G_BYTES + TMP_BYTES + GEMM_TMP_BYTES + <usize>36 * ((<usize>(OB * CB) << 2) + SKEW) +
    <usize>PASS_BYTES + 2 * 36 * SKEW;
}

// F(2, 5)'s A (6 x 2) on the first `count` (1 or 2) of 2 vectors at p and p
// + step (zero past them), written to q, q + qstep, ..., q + 5 qstep: the
// adjoint of A^T (`at6v` with m = 2 in asm/winograd.ts): y0, y0 + y1,
// y0 - y1, y0 + 2 y1, y0 - 2 y1, y1.
@inline function adjoint2(p: usize, step: usize, count: i32, q: usize, qstep: usize): void {
  const y0 = v128.load(p);
  const y1 = count > 1 ? v128.load(p + step) : f32x4.splat(0);
  const y2 = f32x4.add(y1, y1);
  v128.store(q, y0);
  v128.store(q + qstep, f32x4.add(y0, y1));
  v128.store(q + 2 * qstep, f32x4.sub(y0, y1));
  v128.store(q + 3 * qstep, f32x4.add(y0, y2));
  v128.store(q + 4 * qstep, f32x4.sub(y0, y2));
  v128.store(q + 5 * qstep, y1);
}

/**
 * The weight gradient of a 5x5 convolution (stride 1, padding 2) by F(2x2, 5x5),
 * accumulated: dw[o, (i * 5 + j) * c + ch] += sum over images img < n and
 * pixels (y, x) of dy[(img * h + y) * w + x, o] * x[img, y - 2 + i, x - 2 + j, ch]
 * for o in [o0, o1), ch in [c0, c1). x: NHWC (`xstride` floats per pixel);
 * dy: [n * h * w, oc] (`dystride`); dw: dense row-major [oc, 25 * c]. scratch:
 * `winograd_f2x5_weight_grad_scratch_bytes()` bytes owned by the calling thread.
 * c, oc, o0 and c0 multiples of 4. Any split of [o0, o1) x [c0, c1) into calls gives the same bits.
 */
export function winograd_f2x5_weight_grad(
  x: usize, xstride: i32, nimg: i32, h: i32, w: i32, c: i32,
  dy: usize, dystride: i32, oc: i32, dw: usize, scratch: usize, o0: i32, o1: i32, c0: i32, c1: i32,
): void {
  if (o0 >= o1 || c0 >= c1 || nimg <= 0 || h <= 0 || w <= 0) return;
  const n = 6, m = 2, r = 5, pad = 2, nn = 36;
  const tilesW = (w + m - 1) / m, tilesH = (h + m - 1) / m, plane = tilesW * tilesH;
  const tiles = nimg * plane;
  const g = scratch, gt = g + 256;
  const tmp = scratch + G_BYTES;
  const gemmTmp = tmp + TMP_BYTES;
  const uBase = gemmTmp + GEMM_TMP_BYTES;
  const xb = <usize>xstride << 2, dyb = <usize>dystride << 2;
  const rowb = <usize>w * xb; // bytes between input rows
  const ldw = <usize>(r * r * c) << 2;
  write_g(n, r, g);

  for (let ob0 = o0; ob0 < o1; ob0 += OB) {
    const ob = min(OB, o1 - ob0);
    for (let cb0 = c0; cb0 < c1; cb0 += CB) {
      const cb = min(CB, c1 - cb0);
      // Rows of dU and V hold cbs floats (a partial column tile of the GEMM
      // reads 8 wide, into the next row or the skew), rows of dM obs.
      const cbs = (cb + 7) & ~7, obs = ob;
      const uMat = (<usize>(ob * cbs) << 2) + SKEW, uRow = <usize>cbs << 2;
      const perTile = 36 * (cbs + obs) * 4 + obs * 4;
      const tb = max(1, min(TB_MAX, min(tiles, PASS_BYTES / perTile)));
      const vBase = uBase + <usize>nn * uMat;
      const vMat = (<usize>(tb * cbs) << 2) + SKEW;
      const mBase = vBase + <usize>nn * vMat;
      const mMat = (<usize>(tb * obs) << 2) + SKEW, mRow = <usize>obs << 2;
      const pack = mBase + <usize>nn * mMat;
      memory.fill(uBase, 0, <usize>nn * uMat);
      for (let tStart = 0; tStart < tiles; tStart += tb) {
        const rows = min(tb, tiles - tStart);
        for (let t = 0; t < rows; t++) {
          const tile = tStart + t;
          const img = tile / plane, rem = tile - img * plane;
          const ty = rem / tilesW, tx = rem - ty * tilesW;
          // 1. V = B^T d B for channels [cb0, cb0 + cb), zeros outside the image.
          const ximg = x + <usize>img * <usize>h * <usize>w * xb;
          const iy0 = ty * m - pad, ix0 = tx * m - pad;
          const interior = iy0 >= 0 && iy0 + n <= h && ix0 >= 0 && ix0 + n <= w;
          const p = ximg + <usize>((iy0 * w + ix0) * xstride + cb0) * 4;
          input_tiles(n, p, xb, rowb, iy0, h, ix0, w, interior, cb, vBase + (<usize>(t * cbs) << 2), vMat);
          // 2. dM = A dY A^T for channels [ob0, ob0 + ob), zeros outside the map.
          const rowsOut = min(m, h - ty * m), cols = min(m, w - tx * m);
          const dyt = dy + (<usize>(img * h + ty * m) * <usize>w + <usize>(tx * m)) * dyb;
          for (let og = 0; og < ob; og += 4) {
            const src = dyt + (<usize>(ob0 + og) << 2);
            for (let i = 0; i < rowsOut; i++) {
              adjoint2(src + <usize>i * <usize>w * dyb, dyb, cols, tmp + <usize>i * 96, 16);
            }
            const dst = mBase + (<usize>(t * obs + og) << 2);
            for (let j = 0; j < n; j++) {
              adjoint2(tmp + (<usize>j << 4), 96, rowsOut, dst + <usize>j * mMat, <usize>n * mMat);
            }
          }
        }
        // 3. dU[xi] += dM[xi]^T V[xi], tiles in ascending order.
        for (let xi = 0; xi < nn; xi++) {
          pack_dy(mBase + <usize>xi * mMat, mRow, 0, rows, 0, ob, pack);
          const u = uBase + <usize>xi * uMat, a = vBase + <usize>xi * vMat;
          for (let q = 0; q < cb; q += 8) {
            // A partial tile reads 8 wide: V rows hold cbs floats.
            wgrad_span(min(8, cb - q), u, uRow, <usize>q << 2, 0, ob, pack, rows, gemmTmp, a + (<usize>q << 2), uRow);
          }
        }
      }
      // 4. dw[o, (i * r + j) * c + ch] += (G^T dU G)[i][j] in f64, two channels at a time.
      for (let o = 0; o < ob; o++) {
        const drow = dw + <usize>(ob0 + o) * ldw + (<usize>cb0 << 2);
        for (let ch = 0; ch < cb; ch += 2) {
          const src = uBase + (<usize>(o * cbs + ch) << 2);
          for (let i = 0; i < r; i++) {
            for (let b = 0; b < n; b++) {
              let s = f64x2.splat(0);
              for (let a = 0; a < n; a++) {
                const u = f64x2.promote_low_f32x4(v128.load64_zero(src + <usize>(a * n + b) * uMat));
                s = f64x2.add(s, f64x2.mul(f64x2.splat(load<f64>(g + (<usize>(a * r + i) << 3))), u));
              }
              v128.store(gt + (<usize>(i * n + b) << 4), s);
            }
          }
          for (let i = 0; i < r; i++) {
            for (let j = 0; j < r; j++) {
              let s = f64x2.splat(0);
              for (let b = 0; b < n; b++) {
                s = f64x2.add(
                  s, f64x2.mul(v128.load(gt + (<usize>(i * n + b) << 4)), f64x2.splat(load<f64>(g + (<usize>(b * r + j) << 3)))),
                );
              }
              const p = drow + (<usize>((i * r + j) * c + ch) << 2);
              const d = f64x2.add(f64x2.promote_low_f32x4(v128.load64_zero(p)), s);
              v128.store64_lane(p, f32x4.demote_f64x2_zero(d), 0);
            }
          }
        }
      }
    }
  }
}
