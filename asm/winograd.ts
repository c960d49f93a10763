// Stride-1 "same" convolutions by Winograd's minimal filtering on NHWC
// activations (Lavin & Gray). Three variants, one driver:
//   F(4x4, 3x3): 6x6 transform tiles on the points 0, +-1, +-2, inf; 36
//                multiplications per 4x4 output tile and channel pair instead of 144;
//   F(2x2, 5x5): the same 6x6 tiles and input transform B^T (it depends only
//                on the points), 2x2 output tiles: 36 instead of 100;
//   F(2x2, 3x3): 4x4 transform tiles on 0, +-1, inf: 16 instead of 36, with
//                weights 16/9 (not 36/9) the size of the kernel's, for small maps.
// For a block of tiles a thread owns:
//   1. input transform  V[xi] = (B^T d B)[xi] for each n x n input patch d,
//   2. n^2 GEMMs        M[xi] = V[xi] x U[xi] (U = G g G^T, packed at load by
//                       src/backend/pack.ts),
//   3. output transform y = A^T M A + bias, then the epilogue (ReLU, none, or
//                       added to y: the backward pass's data gradient), into the output view.
// The transforms are vectorised over 4 channels; C and OC must be multiples of 4.

import { EPILOGUE_ACC, EPILOGUE_BIAS, EPILOGUE_RELU, gemm_bias, gemm_panel_bytes, GEMM_MR } from "./gemm";

// The row pass of the output transform: no bias, no epilogue.
const EPILOGUE_NONE: i32 = -1;

const TMP_BYTES: usize = 576; // 6x6 patch vectors, later the 6x4 row-transformed outputs
const BLOCK_BUDGET: i32 = 1024 * 1024;

/** Tiles per block for nn transform points, c input and oc output channels: a multiple of MR within the budget. */
@inline function block_tiles(nn: i32, c: i32, oc: i32): i32 {
  const tiles = BLOCK_BUDGET / (nn * (c + oc) * 4);
  return max(GEMM_MR, tiles - tiles % GEMM_MR);
}

/**
 * Tiles a `winograd_*` kernel transforms per block for nn transform
 * points (36 or 16): a range of at most this many tiles takes one pass over the weights.
 */
export function winograd_block_tiles(nn: i32, c: i32, oc: i32): i32 {
  return block_tiles(nn, c, oc);
}

/** Scratch bytes one thread needs for any `winograd_*` kernel. */
export function winograd_scratch_bytes(c: i32, oc: i32): usize {
  const v = max(36 * block_tiles(36, c, oc), 16 * block_tiles(16, c, oc));
  return TMP_BYTES + <usize>v * <usize>(c + oc) * 4;
}

// F(2, 3)'s B^T (points 0, 1, -1, inf) on d0..d3, written to q, q + qstep, ...
@inline function bt4(d0: v128, d1: v128, d2: v128, d3: v128, q: usize, qstep: usize): void {
  v128.store(q, f32x4.sub(d2, d0));
  v128.store(q + qstep, f32x4.add(d1, d2));
  v128.store(q + 2 * qstep, f32x4.sub(d2, d1));
  v128.store(q + 3 * qstep, f32x4.sub(d3, d1));
}

// B^T (points 0, +-1, +-2, inf) on d0..d5, written to q, q + qstep, ...
@inline function bt6(
  d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128, q: usize, qstep: usize,
): void {
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

// B^T of an n-point transform (n = 4 or 6; a constant after inlining) on the n
// vectors at p, p + step, ..., written to q, q + qstep, ...
@inline export function input_1d(n: i32, p: usize, step: usize, q: usize, qstep: usize): void {
  if (n == 6) {
    bt6(
      v128.load(p), v128.load(p + step), v128.load(p + 2 * step), v128.load(p + 3 * step),
      v128.load(p + 4 * step), v128.load(p + 5 * step), q, qstep,
    );
  } else {
    bt4(v128.load(p), v128.load(p + step), v128.load(p + 2 * step), v128.load(p + 3 * step), q, qstep);
  }
}

// The input vector at p, or zeros where the patch lies outside the image.
@inline function patch(p: usize, inside: bool): v128 {
  return inside ? v128.load(p) : f32x4.splat(0);
}

// One patch row of n vectors (pixels ix0 .. ix0 + n - 1 of an input row, at p,
// p + step, ...), transformed by B^T into q, q + 16, ...: straight loads for an
// interior tile (`all`), else zeros outside the image (row iy: `rowIn`).
@inline export function input_row(
  n: i32, p: usize, step: usize, rowIn: bool, ix0: i32, w: i32, all: bool, q: usize,
): void {
  if (all) {
    input_1d(n, p, step, q, 16);
  } else if (n == 6) {
    bt6(
      patch(p, rowIn && <u32>ix0 < <u32>w),
      patch(p + step, rowIn && <u32>(ix0 + 1) < <u32>w),
      patch(p + 2 * step, rowIn && <u32>(ix0 + 2) < <u32>w),
      patch(p + 3 * step, rowIn && <u32>(ix0 + 3) < <u32>w),
      patch(p + 4 * step, rowIn && <u32>(ix0 + 4) < <u32>w),
      patch(p + 5 * step, rowIn && <u32>(ix0 + 5) < <u32>w), q, 16,
    );
  } else {
    bt4(
      patch(p, rowIn && <u32>ix0 < <u32>w),
      patch(p + step, rowIn && <u32>(ix0 + 1) < <u32>w),
      patch(p + 2 * step, rowIn && <u32>(ix0 + 2) < <u32>w),
      patch(p + 3 * step, rowIn && <u32>(ix0 + 3) < <u32>w), q, 16,
    );
  }
}

// A^T of an n-point transform for an output tile of m (constants after
// inlining) on the n vectors at p, p + step, ...: the first `count` of the m
// results go to q, q + qstep, ..., with bias b and the EPILOGUE_* `epilogue`
// (EPILOGUE_NONE: as they are).
// The rows of a tile pass through it into scratch, then its columns straight
// into the output (the tile's bottom rows may fall outside the map).
@inline function output_1d(
  n: i32, m: i32, p: usize, step: usize, q: usize, qstep: usize, count: i32, epilogue: i32, b: v128,
): void {
  const m0 = v128.load(p), m1 = v128.load(p + step), m2 = v128.load(p + 2 * step);
  const m3 = v128.load(p + 3 * step);
  let o0 = m0, o1 = m1, o2 = m2, o3 = m3;
  if (n == 4) {
    // F(2, 3): points 0, 1, -1, inf.
    o0 = f32x4.add(f32x4.add(m0, m1), m2);
    o1 = f32x4.add(f32x4.sub(m1, m2), m3);
  } else {
    // Points 0, +-1, +-2, inf: F(4, 3) keeps four results, F(2, 5) two.
    const m4 = v128.load(p + 4 * step), m5 = v128.load(p + 5 * step);
    const s12 = f32x4.add(m1, m2), d12 = f32x4.sub(m1, m2);
    const s34 = f32x4.add(m3, m4), d34 = f32x4.sub(m3, m4);
    o0 = f32x4.add(f32x4.add(m0, s12), s34);
    o1 = f32x4.add(d12, f32x4.mul(f32x4.splat(2), d34));
    if (m == 2) {
      o1 = f32x4.add(o1, m5);
    } else {
      o2 = f32x4.add(s12, f32x4.mul(f32x4.splat(4), s34));
      o3 = f32x4.add(f32x4.add(d12, f32x4.mul(f32x4.splat(8), d34)), m5);
    }
  }
  finish(q, o0, epilogue, b);
  if (count > 1) finish(q + qstep, o1, epilogue, b);
  if (m > 2 && count > 2) finish(q + 2 * qstep, o2, epilogue, b);
  if (m > 3 && count > 3) finish(q + 3 * qstep, o3, epilogue, b);
}

// Stores v at q: as it is, v + b, relu(v + b), or q += v + b, by `epilogue`.
@inline function finish(q: usize, v: v128, epilogue: i32, b: v128): void {
  if (epilogue == EPILOGUE_NONE) {
    v128.store(q, v);
  } else if (epilogue == EPILOGUE_RELU) {
    v128.store(q, f32x4.max(f32x4.add(v, b), f32x4.splat(0)));
  } else if (epilogue == EPILOGUE_ACC) {
    v128.store(q, f32x4.add(v128.load(q), f32x4.add(v, b)));
  } else {
    v128.store(q, f32x4.add(v, b));
  }
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
  winograd_tiles(6, 4, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_RELU);
}

/** y = conv3x3(x, w, padding 1) + bias (no ReLU); arguments as for `winograd_f4x3_bias_relu`. */
export function winograd_f4x3_bias(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(6, 4, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_BIAS);
}

/** y += conv3x3(x, w, padding 1) + bias (no ReLU); arguments as for `winograd_f4x3_bias_relu`. */
export function winograd_f4x3_acc(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(6, 4, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_ACC);
}

/**
 * y = relu(conv5x5(x, w, padding 2) + bias) for tiles [t0, t1) of the N x
 * ceil(H/2) x ceil(W/2) output tiles; arguments as for `winograd_f4x3_bias_relu`.
 */
export function winograd_f2x5_bias_relu(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(6, 2, 2, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_RELU);
}

/** y = conv5x5(x, w, padding 2) + bias (no ReLU); arguments as for `winograd_f2x5_bias_relu`. */
export function winograd_f2x5_bias(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(6, 2, 2, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_BIAS);
}

/** y += conv5x5(x, w, padding 2) + bias (no ReLU); arguments as for `winograd_f2x5_bias_relu`. */
export function winograd_f2x5_acc(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(6, 2, 2, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_ACC);
}

/**
 * y = relu(conv3x3(x, w, padding 1) + bias) for tiles [t0, t1) of the N x
 * ceil(H/2) x ceil(W/2) output tiles; u holds 16 matrices (not 36); other
 * arguments as for `winograd_f4x3_bias_relu`.
 */
export function winograd_f2x3_bias_relu(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(4, 2, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_RELU);
}

/** y = conv3x3(x, w, padding 1) + bias (no ReLU); arguments as for `winograd_f2x3_bias_relu`. */
export function winograd_f2x3_bias(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(4, 2, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_BIAS);
}

/** y += conv3x3(x, w, padding 1) + bias (no ReLU); arguments as for `winograd_f2x3_bias_relu`. */
export function winograd_f2x3_acc(
  x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32,
): void {
  winograd_tiles(4, 2, 1, x, xstride, h, w, c, u, oc, y, ystride, scratch, t0, t1, EPILOGUE_ACC);
}

// The driver for n x n transform tiles, an m x m output tile, `pad` pixels
// of zero padding and an EPILOGUE_* `epilogue` (constants after inlining, so
// each export is specialised).
@inline function winograd_tiles(
  n: i32, m: i32, pad: i32, x: usize, xstride: i32, h: i32, w: i32, c: i32,
  u: usize, oc: i32, y: usize, ystride: i32, scratch: usize, t0: i32, t1: i32, epilogue: i32,
): void {
  const tilesW = (w + m - 1) / m, tilesH = (h + m - 1) / m, plane = tilesW * tilesH;
  const nn = n * n;
  const tb = block_tiles(nn, c, oc);
  const tmp = scratch;
  const vBase = scratch + TMP_BYTES;
  const vMat = <usize>tb * <usize>c << 2; // bytes of one V[xi]
  const mBase = vBase + <usize>nn * vMat;
  const mMat = <usize>tb * <usize>oc << 2;
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2;
  const bias = u;
  const weights = u + ((<usize>(oc + 3) & ~3) << 2);
  const panelMat = <usize>((oc + 7) >> 3) * gemm_panel_bytes(c);
  const panels = (oc + 7) >> 3;

  for (let tStart = t0; tStart < t1; tStart += tb) {
    const rows = min(tb, t1 - tStart);
    // 1. Input transform, 4 channels at a time.
    for (let r = 0; r < rows; r++) {
      const t = tStart + r;
      const img = t / plane, rem = t - img * plane;
      const ty = rem / tilesW, tx = rem - ty * tilesW;
      const ximg = x + <usize>img * <usize>h * <usize>w * xb;
      // Interior tiles (the patch wholly inside the image) load without checks.
      const iy0 = ty * m - pad, ix0 = tx * m - pad;
      const interior = iy0 >= 0 && iy0 + n <= h && ix0 >= 0 && ix0 + n <= w;
      for (let cg = 0; cg < c; cg += 4) {
        // Patch rows, each transformed by B^T on the way, -> tmp (n x n vectors).
        for (let i = 0; i < n; i++) {
          const iy = iy0 + i;
          const p = ximg + <usize>((iy * w + ix0) * xstride + cg) * 4;
          input_row(n, p, xb, <u32>iy < <u32>h, ix0, w, interior, tmp + <usize>i * 96);
        }
        // Columns: V[i * n + j] row r, channels cg..cg+3.
        const dst = vBase + (<usize>r * <usize>c + <usize>cg) * 4;
        for (let j = 0; j < n; j++) {
          input_1d(n, tmp + (<usize>j << 4), 96, dst + <usize>j * vMat, <usize>n * vMat);
        }
      }
    }
    // 2. One GEMM per transform point (one copy of the GEMM shared by every variant).
    for (let xi = 0; xi < nn; xi++) {
      gemm_bias(
        oc, c, vBase + <usize>xi * vMat, c, weights + <usize>xi * panelMat,
        mBase + <usize>xi * mMat, oc, 0, rows, 0, panels,
      );
    }
    // 3. Output transform, bias and the epilogue, 4 output channels at a time.
    for (let r = 0; r < rows; r++) {
      const t = tStart + r;
      const img = t / plane, rem = t - img * plane;
      const ty = rem / tilesW, tx = rem - ty * tilesW;
      const yimg = y + <usize>img * <usize>h * <usize>w * yb;
      const rowsOut = min(m, h - ty * m), cols = min(m, w - tx * m);
      for (let og = 0; og < oc; og += 4) {
        const src = mBase + (<usize>r * <usize>oc + <usize>og) * 4;
        // Rows of M (n x n) -> tmp (n x m) by A, then columns -> m x m.
        const b = v128.load(bias + (<usize>og << 2));
        for (let i = 0; i < n; i++) {
          output_1d(n, m, src + <usize>(i * n) * mMat, mMat, tmp + <usize>i * 64, 16, m, EPILOGUE_NONE, b);
        }
        // Columns of tmp -> the tile's output pixels, with bias and the epilogue.
        const out = yimg + (<usize>(ty * m) * <usize>w + <usize>(tx * m)) * yb + (<usize>og << 2);
        for (let j = 0; j < cols; j++) {
          output_1d(n, m, tmp + (<usize>j << 4), 64, out + <usize>j * yb, <usize>w * yb, rowsOut, epilogue, b);
        }
      }
    }
  }
}
