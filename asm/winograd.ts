// 3x3 stride-1 padding-1 convolution by Winograd F(4x4, 3x3) on NHWC
// activations: 36 multiplications per 4x4 output tile and channel pair
// instead of 144. For a block of tiles a thread owns:
//   1. input transform  V[xi] = (B^T d B)[xi] for each 6x6 input patch d,
//   2. 36 GEMMs         M[xi] = V[xi] x U[xi] (U = G g G^T, packed at load),
//   3. output transform y = A^T M A + bias, ReLU, into the output view.
// The transforms are vectorised over 4 channels; C and OC must be multiples of 4.
// Points 0, +-1, +-2 (Lavin & Gray); the weight transform is in src/backend/pack.ts.

import { gemm_panel_bytes, gemm_tiles, GEMM_MR } from "./gemm";

const TMP_BYTES: usize = 640; // 6x6 patch vectors, then 6x4 + 4x4 output vectors
const BLOCK_BUDGET: i32 = 2 * 1024 * 1024;

/** Tiles per block for c input and oc output channels: a multiple of MR within the budget. */
@inline function block_tiles(c: i32, oc: i32): i32 {
  const tiles = BLOCK_BUDGET / (36 * (c + oc) * 4);
  return max(GEMM_MR, tiles - tiles % GEMM_MR);
}

/** Scratch bytes one thread needs for `winograd_f4x3_bias_relu`. */
export function winograd_scratch_bytes(c: i32, oc: i32): usize {
  return TMP_BYTES + 36 * <usize>block_tiles(c, oc) * <usize>(c + oc) * 4;
}

// Row transform of B^T applied to 6 vectors at p, p + step, ..., written to q, q + qstep, ...
@inline function input_1d(p: usize, step: usize, q: usize, qstep: usize): void {
  const d0 = v128.load(p), d1 = v128.load(p + step), d2 = v128.load(p + 2 * step);
  const d3 = v128.load(p + 3 * step), d4 = v128.load(p + 4 * step), d5 = v128.load(p + 5 * step);
  const four = f32x4.splat(4), five = f32x4.splat(5), two = f32x4.splat(2);
  // r0 = 4 d0 - 5 d2 + d4; r5 = 4 d1 - 5 d3 + d5
  v128.store(q, f32x4.add(f32x4.sub(f32x4.mul(four, d0), f32x4.mul(five, d2)), d4));
  v128.store(q + 5 * qstep, f32x4.add(f32x4.sub(f32x4.mul(four, d1), f32x4.mul(five, d3)), d5));
  // r1,2 = d4 - 4 d2 -+ (4 d1 - d3)
  const a = f32x4.sub(d4, f32x4.mul(four, d2)), b = f32x4.sub(f32x4.mul(four, d1), d3);
  v128.store(q + qstep, f32x4.sub(a, b));
  v128.store(q + 2 * qstep, f32x4.add(a, b));
  // r3,4 = d4 - d2 -+ (2 d1 - 2 d3)
  const e = f32x4.sub(d4, d2), f = f32x4.mul(two, f32x4.sub(d1, d3));
  v128.store(q + 3 * qstep, f32x4.sub(e, f));
  v128.store(q + 4 * qstep, f32x4.add(e, f));
}

// Row transform of A^T: 6 vectors at p, p + step, ... to 4 vectors at q, q + qstep, ...
@inline function output_1d(p: usize, step: usize, q: usize, qstep: usize): void {
  const m0 = v128.load(p), m1 = v128.load(p + step), m2 = v128.load(p + 2 * step);
  const m3 = v128.load(p + 3 * step), m4 = v128.load(p + 4 * step), m5 = v128.load(p + 5 * step);
  const s12 = f32x4.add(m1, m2), d12 = f32x4.sub(m1, m2);
  const s34 = f32x4.add(m3, m4), d34 = f32x4.sub(m3, m4);
  v128.store(q, f32x4.add(f32x4.add(m0, s12), s34));
  v128.store(q + qstep, f32x4.add(d12, f32x4.mul(f32x4.splat(2), d34)));
  v128.store(q + 2 * qstep, f32x4.add(s12, f32x4.mul(f32x4.splat(4), s34)));
  v128.store(q + 3 * qstep, f32x4.add(f32x4.add(d12, f32x4.mul(f32x4.splat(8), d34)), m5));
}

/**
 * y = relu(conv3x3(x, w, padding 1) + bias) for tiles [t0, t1) of the N x
 * ceil(H/4) x ceil(W/4) output tiles. x: NHWC with `xstride` floats between
 * pixels; y: NHWC (H x W) with `ystride`. u: [bias (oc floats, padded to 4)]
 * then 36 GEMM-packed matrices of depth c and oc columns.
 */
export function winograd_f4x3_bias_relu(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  const tilesW = (w + 3) >> 2, tilesH = (h + 3) >> 2, plane = tilesW * tilesH;
  const tb = block_tiles(c, oc);
  const tmp = scratch;
  const vBase = scratch + TMP_BYTES;
  const vMat = <usize>tb * <usize>c << 2; // bytes of one V[xi]
  const mBase = vBase + 36 * vMat;
  const mMat = <usize>tb * <usize>oc << 2;
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2;
  const bias = u;
  const weights = u + ((<usize>(oc + 3) & ~3) << 2);
  const panelMat = <usize>((oc + 7) >> 3) * gemm_panel_bytes(c);
  const panels = (oc + 7) >> 3;
  const zero = f32x4.splat(0);

  for (let tStart = t0; tStart < t1; tStart += tb) {
    const rows = min(tb, t1 - tStart);
    // 1. Input transform, 4 channels at a time.
    for (let r = 0; r < rows; r++) {
      const t = tStart + r;
      const img = t / plane, rem = t - img * plane;
      const ty = rem / tilesW, tx = rem - ty * tilesW;
      const ximg = x + <usize>img * <usize>h * <usize>w * xb;
      for (let cg = 0; cg < c; cg += 4) {
        // Patch rows -> tmp (6x6 vectors), each row transformed by B.
        for (let i = 0; i < 6; i++) {
          const iy = ty * 4 - 1 + i;
          const row = tmp + <usize>i * 96;
          for (let j = 0; j < 6; j++) {
            const ix = tx * 4 - 1 + j;
            const inside = <u32>iy < <u32>h && <u32>ix < <u32>w;
            v128.store(row + (<usize>j << 4), inside
              ? v128.load(ximg + (<usize>iy * <usize>w + <usize>ix) * xb + (<usize>cg << 2))
              : zero);
          }
          input_1d(row, 16, row, 16);
        }
        // Columns: V[i * 6 + j] row r, channels cg..cg+3.
        const dst = vBase + (<usize>r * <usize>c + <usize>cg) * 4;
        for (let j = 0; j < 6; j++) {
          input_1d(tmp + (<usize>j << 4), 96, dst + <usize>j * vMat, 6 * vMat);
        }
      }
    }
    // 2. One GEMM per transform point.
    for (let xi = 0; xi < 36; xi++) {
      gemm_tiles(
        oc, c, vBase + <usize>xi * vMat, c, weights + <usize>xi * panelMat,
        mBase + <usize>xi * mMat, oc, 0, rows, 0, panels, false,
      );
    }
    // 3. Output transform, bias and ReLU, 4 output channels at a time.
    for (let r = 0; r < rows; r++) {
      const t = tStart + r;
      const img = t / plane, rem = t - img * plane;
      const ty = rem / tilesW, tx = rem - ty * tilesW;
      const yimg = y + <usize>img * <usize>h * <usize>w * yb;
      for (let og = 0; og < oc; og += 4) {
        const src = mBase + (<usize>r * <usize>oc + <usize>og) * 4;
        // Rows of M (6 x 6) -> tmp (6 x 4) by A, then columns -> 4 x 4.
        for (let i = 0; i < 6; i++) output_1d(src + <usize>i * 6 * mMat, mMat, tmp + <usize>i * 64, 16);
        for (let j = 0; j < 4; j++) output_1d(tmp + (<usize>j << 4), 64, tmp + 384 + (<usize>j << 4), 64);
        const b = v128.load(bias + (<usize>og << 2));
        for (let a = 0; a < 4; a++) {
          const oy = ty * 4 + a;
          if (oy >= h) break;
          for (let j = 0; j < 4; j++) {
            const ox = tx * 4 + j;
            if (ox >= w) break;
            const v = f32x4.max(f32x4.add(v128.load(tmp + 384 + <usize>a * 64 + (<usize>j << 4)), b), zero);
            v128.store(yimg + (<usize>oy * <usize>w + <usize>ox) * yb + (<usize>og << 2), v);
          }
        }
      }
    }
  }
}
