// The weight gradient of the stride-1 "same" 3x3 convolutions by Winograd's
// F(4x4, 3x3) (the backward-filter of cuDNN's WINOGRAD_NONFUSED), on the
// transforms of asm/winograd.ts. The forward is y = A^T [(G g G^T) . (B^T d B)] A
// per tile, so its weight gradient is
//   dW = G^T dU G,  dU[xi] = sum over tiles of V[xi]^T dM[xi],
// with V = B^T d B (the forward's input transform) and dM = A dY A^T (the
// adjoint of its output transform) for each of the 36 transform points xi.
// For a block of output channels x input channels (at most OB x CB) a call
//   1. zeroes the block's dU (36 matrices, in scratch),
//   2. for each block of TB tiles: transforms the input patches (CB channels)
//      and the output-gradient tiles (OB channels), then adds dM^T V to dU by
//      36 GEMMs on the register-tiled kernel of `conv2d_weight_grad`,
//   3. adds G^T dU G to dw, per (o, c) pair in f64.
// Every dU element sums the tiles in ascending order from zero, so any split
// of the channels into calls (threads, chunks) gives the same bits.
// C and OC must be multiples of 4, o0 and c0 too.
// F(2x2, 3x3) and F(2x2, 5x5) by the same driver were measured too (GoogLeNet's
// layers, batch 16, one thread): F(2x2, 3x3) never beat F(4x4, 3x3), F(2x2, 5x5)
// was within noise of the direct 5x5 kernel at 9x its error, so neither is built.

import { pack_dy, wgrad_rows } from "./conv_grad";
import { input_tiles } from "./winograd";

/** Output channels of a dU block. */
const OB: i32 = 64;
/** Input channels of a dU block. */
const CB: i32 = 64;
/** Tiles transformed per GEMM pass. */
const TB: i32 = 32;
/** G (n x r f64) and G^T dU (r x n f64). */
const G_BYTES: usize = 512;
/** 6 rows of 6 vectors: a patch after its row transform (96 bytes per row). */
const TMP_BYTES: usize = 576;
/** The 6 x 8 dU copy a partial column tile of the GEMM runs on. */
const GEMM_TMP_BYTES: usize = 192;

/** Scratch bytes one thread needs for `winograd_f4x3_weight_grad`. */
export function winograd_weight_grad_scratch_bytes(): usize {
  return G_BYTES + TMP_BYTES + GEMM_TMP_BYTES +
    <usize>36 * <usize>(OB * CB + TB * CB + TB * OB) * 4 + <usize>(TB * OB) * 4;
}

// The interpolation point a (0, 1, -1, 2, -2 for a = 0..4).
@inline function point(a: i32): f64 {
  return a == 0 ? 0 : a == 1 ? 1 : a == 2 ? -1 : a == 3 ? 2 : -2;
}

// G (n x r) at g, as src/backend/pack.ts's winogradG: row a < n - 1 is
// point(a)^k / prod_{b != a} (point(a) - point(b)), the last row (infinity) picks k = r - 1.
@inline function write_g(n: i32, r: i32, g: usize): void {
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

// F(4, 3)'s A (6 x 4) on the first `count` (1..4) of 4 vectors at p, p +
// step, ... (zeros past them), written to q, q + qstep, ..., q + 5 qstep:
// the adjoint of A^T (`at6v` in asm/winograd.ts).
@inline function adjoint_1d(p: usize, step: usize, count: i32, q: usize, qstep: usize): void {
  const z = f32x4.splat(0);
  const y0 = v128.load(p);
  const y1 = count > 1 ? v128.load(p + step) : z;
  const y2 = count > 2 ? v128.load(p + 2 * step) : z;
  const y3 = count > 3 ? v128.load(p + 3 * step) : z;
  // Row k is point(k)^i for i < 4, the last (infinity) picks y3.
  const e1 = f32x4.add(y0, y2), o1 = f32x4.add(y1, y3);
  const e2 = f32x4.add(y0, f32x4.mul(f32x4.splat(4), y2));
  const o2 = f32x4.add(f32x4.add(y1, y1), f32x4.mul(f32x4.splat(8), y3));
  v128.store(q, y0);
  v128.store(q + qstep, f32x4.add(e1, o1));
  v128.store(q + 2 * qstep, f32x4.sub(e1, o1));
  v128.store(q + 3 * qstep, f32x4.add(e2, o2));
  v128.store(q + 4 * qstep, f32x4.sub(e2, o2));
  v128.store(q + 5 * qstep, y3);
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
  weight_grad(6, 4, 3, x, xstride, n, h, w, c, dy, dystride, oc, dw, scratch, o0, o1, c0, c1);
}

// The driver for n x n transform tiles, m x m output tiles and r x r kernels
// (constants after inlining; only F(4x4, 3x3)'s transforms are here).
@inline function weight_grad(
  n: i32, m: i32, r: i32, x: usize, xstride: i32, nimg: i32, h: i32, w: i32, c: i32,
  dy: usize, dystride: i32, oc: i32, dw: usize, scratch: usize, o0: i32, o1: i32, c0: i32, c1: i32,
): void {
  if (o0 >= o1 || c0 >= c1 || nimg <= 0 || h <= 0 || w <= 0) return;
  const pad = (r - 1) >> 1, nn = n * n;
  const tilesW = (w + m - 1) / m, tilesH = (h + m - 1) / m, plane = tilesW * tilesH;
  const tiles = nimg * plane;
  const g = scratch, gt = g + 256;
  const tmp = scratch + G_BYTES;
  const gemmTmp = tmp + TMP_BYTES;
  const uBase = gemmTmp + GEMM_TMP_BYTES;
  const uMat = <usize>(OB * CB) << 2, uRow = <usize>CB << 2;
  const vBase = uBase + <usize>nn * uMat;
  const vMat = <usize>(TB * CB) << 2;
  const mBase = vBase + <usize>nn * vMat;
  const mMat = <usize>(TB * OB) << 2, mRow = <usize>OB << 2;
  const pack = mBase + <usize>nn * mMat;
  const xb = <usize>xstride << 2, dyb = <usize>dystride << 2;
  const rowb = <usize>w * xb; // bytes between input rows
  const ldw = <usize>(r * r * c) << 2;
  write_g(n, r, g);

  for (let ob0 = o0; ob0 < o1; ob0 += OB) {
    const ob = min(OB, o1 - ob0);
    for (let cb0 = c0; cb0 < c1; cb0 += CB) {
      const cb = min(CB, c1 - cb0);
      memory.fill(uBase, 0, <usize>nn * uMat);
      for (let tStart = 0; tStart < tiles; tStart += TB) {
        const rows = min(TB, tiles - tStart);
        for (let t = 0; t < rows; t++) {
          const tile = tStart + t;
          const img = tile / plane, rem = tile - img * plane;
          const ty = rem / tilesW, tx = rem - ty * tilesW;
          // 1. V = B^T d B for channels [cb0, cb0 + cb), zeros outside the image.
          const ximg = x + <usize>img * <usize>h * <usize>w * xb;
          const iy0 = ty * m - pad, ix0 = tx * m - pad;
          const interior = iy0 >= 0 && iy0 + n <= h && ix0 >= 0 && ix0 + n <= w;
          const p = ximg + <usize>((iy0 * w + ix0) * xstride + cb0) * 4;
          input_tiles(n, p, xb, rowb, iy0, h, ix0, w, interior, cb, vBase + (<usize>(t * CB) << 2), vMat);
          // 2. dM = A dY A^T for channels [ob0, ob0 + ob), zeros outside the map.
          const rowsOut = min(m, h - ty * m), cols = min(m, w - tx * m);
          const dyt = dy + (<usize>(img * h + ty * m) * <usize>w + <usize>(tx * m)) * dyb;
          for (let og = 0; og < ob; og += 4) {
            const src = dyt + (<usize>(ob0 + og) << 2);
            for (let i = 0; i < rowsOut; i++) {
              adjoint_1d(src + <usize>i * <usize>w * dyb, dyb, cols, tmp + <usize>i * 96, 16);
            }
            const dst = mBase + (<usize>(t * OB + og) << 2);
            for (let j = 0; j < n; j++) {
              adjoint_1d(tmp + (<usize>j << 4), 96, rowsOut, dst + <usize>j * mMat, <usize>n * mMat);
            }
          }
        }
        // 3. dU[xi] += dM[xi]^T V[xi], tiles in ascending order.
        for (let xi = 0; xi < nn; xi++) {
          pack_dy(mBase + <usize>xi * mMat, mRow, 0, rows, 0, ob, pack);
          const u = uBase + <usize>xi * uMat, a = vBase + <usize>xi * vMat;
          for (let q = 0; q < cb; q += 8) {
            // V rows hold CB floats: a partial tile may read 8 wide (cb < CB then).
            wgrad_rows(
              min(8, cb - q), u, uRow, <usize>q << 2, 0, ob, pack, rows, false, true, gemmTmp,
              a + (<usize>q << 2), uRow, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            );
          }
        }
      }
      // 4. dw[o, (i * r + j) * c + ch] += (G^T dU G)[i][j] in f64.
      for (let o = 0; o < ob; o++) {
        const drow = dw + <usize>(ob0 + o) * ldw + (<usize>cb0 << 2);
        for (let ch = 0; ch < cb; ch++) {
          const src = uBase + (<usize>(o * CB + ch) << 2);
          for (let i = 0; i < r; i++) {
            for (let b = 0; b < n; b++) {
              let s: f64 = 0;
              for (let a = 0; a < n; a++) {
                s += load<f64>(g + (<usize>(a * r + i) << 3)) *
                  <f64>load<f32>(src + <usize>(a * n + b) * uMat);
              }
              store<f64>(gt + (<usize>(i * n + b) << 3), s);
            }
          }
          for (let i = 0; i < r; i++) {
            for (let j = 0; j < r; j++) {
              let s: f64 = 0;
              for (let b = 0; b < n; b++) {
                s += load<f64>(gt + (<usize>(i * n + b) << 3)) * load<f64>(g + (<usize>(b * r + j) << 3));
              }
              const p = drow + (<usize>((i * r + j) * c + ch) << 2);
              store<f32>(p, <f32>(<f64>load<f32>(p) + s));
            }
          }
        }
      }
    }
  }
}
