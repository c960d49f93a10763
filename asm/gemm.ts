// f32 GEMM over packed weights with a fused bias (+ ReLU) epilogue.
//
// C[m, n] = bias[n] + sum_k A[m, k] * B[k, n], then an epilogue: none,
// max(., 0), or added to C (the backward pass accumulates gradients).
// A is row-major with row stride `lda` (floats); C has row stride `ldc`, so a
// convolution branch writes straight into its channel slice of a concat.
// B is packed once at load into panels of NR = 8 columns:
//   panel p = [bias[8p .. 8p+8], B[0, 8p .. 8p+8], ..., B[K-1, 8p .. 8p+8]]
// (XNNPACK's layout: bias in front of each NR-wide panel, columns past N zero).

import { add_n, madd, relu4, store_n } from "./simd";

// Epilogues, compile-time constants of the drivers (one source, one export each):
/** y = conv/GEMM + bias. */
export const EPILOGUE_BIAS: i32 = 0;
/** y = max(conv/GEMM + bias, 0), NaN propagating. */
export const EPILOGUE_RELU: i32 = 1;
/** y += conv/GEMM + bias (accumulate, no ReLU). */
export const EPILOGUE_ACC: i32 = 2;

// Micro-kernel variants: the same multiply-adds in the same order for every
// output (so any variant gives the same bits), with a different instruction
// mix. Deno runs Wasm without V8's trap handler, so every load carries a
// compare-and-branch bounds check; on Intel those branches share port 0 with
// the FMAs, and how many there are per FMA decides the speed there
// (docs/kernels.md has the measurements). The calibration in
// src/backend/wasm/calibrate.ts picks one per process; `gemm_variant` sets it.
/** A broadcast from `row + k` per row: one index add per load (XNNPACK's "loadsplat"). */
export const GEMM_LOADSPLAT: i32 = 0;
/**
 * Row pointers bumped by one float per step, two steps per trip of an inner
 * loop whose count V8 can see (it drops that loop's stack check): fewer
 * branches per FMA. Also "loadsplat" by instruction, not by loop shape.
 */
export const GEMM_BUMP2: i32 = 1;
/** How many variants there are. */
export const GEMM_VARIANTS: i32 = 2;

let gemmVariant: i32 = GEMM_LOADSPLAT;

/**
 * Selects the micro-kernel variant of this instance (a GEMM_* constant) and
 * returns the one in use; an out-of-range value only reads it.
 */
export function gemm_variant(variant: i32): i32 {
  if (<u32>variant < <u32>GEMM_VARIANTS) gemmVariant = variant;
  return gemmVariant;
}

/** Columns per packed weight panel. */
export const GEMM_NR: i32 = 8;
/** Rows of the main micro-kernel. */
export const GEMM_MR: i32 = 6;

// Micro-kernel: mr (1 to 6, a constant after inlining) rows x 8 columns. At
// mr = 6: 12 accumulators + 2 B vectors + 1 splat, 15 of V8's vector
// registers; the rows past mr fold away at compile time, which gives the
// 4x8, 2x8 and 1x8 kernels for the rows left over. `epilogue` is an
// EPILOGUE_* constant.
@inline function f32_gemm_x8(
  mr: i32, k: i32, a: usize, lda: usize, w: usize, c: usize, ldc: usize, nc: i32, epilogue: i32,
): void {
  let b0 = v128.load(w);
  let b1 = v128.load(w, 16);
  let c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1;
  let c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1;
  const a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda;
  w += 32;
  for (let o: usize = 0, end = <usize>k << 2; o < end; o += 4) {
    b0 = v128.load(w);
    b1 = v128.load(w, 16);
    w += 32;
    let va = v128.load32_splat(a + o);
    c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
    if (mr > 1) {
      va = v128.load32_splat(a1 + o);
      c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
    }
    if (mr > 2) {
      va = v128.load32_splat(a2 + o);
      c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
    }
    if (mr > 3) {
      va = v128.load32_splat(a3 + o);
      c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
    }
    if (mr > 4) {
      va = v128.load32_splat(a4 + o);
      c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
    }
    if (mr > 5) {
      va = v128.load32_splat(a5 + o);
      c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
    }
  }
  if (epilogue == EPILOGUE_ACC) {
    add_n(c, c00, c01, nc);
    if (mr > 1) add_n(c + ldc, c10, c11, nc);
    if (mr > 2) add_n(c + 2 * ldc, c20, c21, nc);
    if (mr > 3) add_n(c + 3 * ldc, c30, c31, nc);
    if (mr > 4) add_n(c + 4 * ldc, c40, c41, nc);
    if (mr > 5) add_n(c + 5 * ldc, c50, c51, nc);
    return;
  }
  if (epilogue == EPILOGUE_RELU) {
    c00 = relu4(c00); c01 = relu4(c01); c10 = relu4(c10); c11 = relu4(c11);
    c20 = relu4(c20); c21 = relu4(c21); c30 = relu4(c30); c31 = relu4(c31);
    c40 = relu4(c40); c41 = relu4(c41); c50 = relu4(c50); c51 = relu4(c51);
  }
  store_n(c, c00, c01, nc);
  if (mr > 1) store_n(c + ldc, c10, c11, nc);
  if (mr > 2) store_n(c + 2 * ldc, c20, c21, nc);
  if (mr > 3) store_n(c + 3 * ldc, c30, c31, nc);
  if (mr > 4) store_n(c + 4 * ldc, c40, c41, nc);
  if (mr > 5) store_n(c + 5 * ldc, c50, c51, nc);
}

// GEMM_BUMP2: f32_gemm_x8 with six row pointers bumped by 4 bytes per step
// and two steps per trip of an inner loop of constant count (k odd: one more
// step after, written out again: a loop whose count is not a constant keeps
// V8's stack check, and a break test costs a branch per trip). Each accumulator sees the same multiply-adds in the same order.
@inline function f32_gemm_x8_bump2(
  mr: i32, k: i32, a: usize, lda: usize, w: usize, c: usize, ldc: usize, nc: i32, epilogue: i32,
): void {
  let b0 = v128.load(w);
  let b1 = v128.load(w, 16);
  let c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1;
  let c30 = b0, c31 = b1, c40 = b0, c41 = b1, c50 = b0, c51 = b1;
  let p0 = a, p1 = a + lda, p2 = p1 + lda, p3 = p2 + lda, p4 = p3 + lda, p5 = p4 + lda;
  w += 32;
  const end = a + (<usize>(k & ~1) << 2);
  while (p0 < end) {
    for (let j = 0; j < 2; j++) {
      b0 = v128.load(w);
      b1 = v128.load(w, 16);
      w += 32;
      let va = v128.load32_splat(p0);
      c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
      if (mr > 1) {
        va = v128.load32_splat(p1);
        c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
      }
      if (mr > 2) {
        va = v128.load32_splat(p2);
        c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
      }
      if (mr > 3) {
        va = v128.load32_splat(p3);
        c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
      }
      if (mr > 4) {
        va = v128.load32_splat(p4);
        c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
      }
      if (mr > 5) {
        va = v128.load32_splat(p5);
        c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
      }
      p0 += 4; p1 += 4; p2 += 4; p3 += 4; p4 += 4; p5 += 4;
    }
  }
  if (k & 1) {
    b0 = v128.load(w);
    b1 = v128.load(w, 16);
    w += 32;
    let va = v128.load32_splat(p0);
    c00 = madd(va, b0, c00); c01 = madd(va, b1, c01);
    if (mr > 1) {
      va = v128.load32_splat(p1);
      c10 = madd(va, b0, c10); c11 = madd(va, b1, c11);
    }
    if (mr > 2) {
      va = v128.load32_splat(p2);
      c20 = madd(va, b0, c20); c21 = madd(va, b1, c21);
    }
    if (mr > 3) {
      va = v128.load32_splat(p3);
      c30 = madd(va, b0, c30); c31 = madd(va, b1, c31);
    }
    if (mr > 4) {
      va = v128.load32_splat(p4);
      c40 = madd(va, b0, c40); c41 = madd(va, b1, c41);
    }
    if (mr > 5) {
      va = v128.load32_splat(p5);
      c50 = madd(va, b0, c50); c51 = madd(va, b1, c51);
    }
    p0 += 4; p1 += 4; p2 += 4; p3 += 4; p4 += 4; p5 += 4;
  }
  if (epilogue == EPILOGUE_ACC) {
    add_n(c, c00, c01, nc);
    if (mr > 1) add_n(c + ldc, c10, c11, nc);
    if (mr > 2) add_n(c + 2 * ldc, c20, c21, nc);
    if (mr > 3) add_n(c + 3 * ldc, c30, c31, nc);
    if (mr > 4) add_n(c + 4 * ldc, c40, c41, nc);
    if (mr > 5) add_n(c + 5 * ldc, c50, c51, nc);
    return;
  }
  if (epilogue == EPILOGUE_RELU) {
    c00 = relu4(c00); c01 = relu4(c01); c10 = relu4(c10); c11 = relu4(c11);
    c20 = relu4(c20); c21 = relu4(c21); c30 = relu4(c30); c31 = relu4(c31);
    c40 = relu4(c40); c41 = relu4(c41); c50 = relu4(c50); c51 = relu4(c51);
  }
  store_n(c, c00, c01, nc);
  if (mr > 1) store_n(c + ldc, c10, c11, nc);
  if (mr > 2) store_n(c + 2 * ldc, c20, c21, nc);
  if (mr > 3) store_n(c + 3 * ldc, c30, c31, nc);
  if (mr > 4) store_n(c + 4 * ldc, c40, c41, nc);
  if (mr > 5) store_n(c + 5 * ldc, c50, c51, nc);
}

// One tile of mr rows (a constant after inlining) in the selected variant.
@inline function gemm_tile(
  variant: i32, mr: i32, k: i32, a: usize, lda: usize, w: usize, c: usize, ldc: usize, nc: i32,
  epilogue: i32,
): void {
  // The 4-, 2- and 1-row tiles take the rows left over: one variant for them keeps the binary small.
  if (variant == GEMM_BUMP2 && mr == GEMM_MR) f32_gemm_x8_bump2(mr, k, a, lda, w, c, ldc, nc, epilogue);
  else f32_gemm_x8(mr, k, a, lda, w, c, ldc, nc, epilogue);
}

/** Rows of A per cache block: about 96 KiB of A, a multiple of MR. */
@inline export function gemm_block_rows(k: i32): i32 {
  const rows = (96 * 1024) / (k << 2);
  return max(GEMM_MR, rows - rows % GEMM_MR);
}

/** Bytes of one packed panel of depth `k`. */
@inline export function gemm_panel_bytes(k: i32): usize {
  return (<usize>k + 1) << 5;
}

// The tiling driver: rows [m0, m1) x panels [p0, p1), blocked so that a block
// of A stays in L2 while each panel (<= 27 KiB for K <= 832) stays in L1.
@inline export function gemm_tiles(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32, epilogue: i32,
): void {
  const ldaB = <usize>lda << 2, ldcB = <usize>ldc << 2;
  const panel = gemm_panel_bytes(k);
  const mb = gemm_block_rows(k);
  const variant = gemmVariant;
  for (let mStart = m0; mStart < m1; mStart += mb) {
    const mEnd = min(mStart + mb, m1);
    for (let p = p0; p < p1; p++) {
      const nc = min(n - p * GEMM_NR, GEMM_NR);
      const pw = w + <usize>p * panel;
      const pc = c + (<usize>p << 5);
      let m = mStart;
      for (; m + GEMM_MR <= mEnd; m += GEMM_MR) {
        gemm_tile(variant, GEMM_MR, k, a + <usize>m * ldaB, ldaB, pw, pc + <usize>m * ldcB, ldcB, nc, epilogue);
      }
      // 1 to 5 rows left: 4 + 1, 2 + 1 or 1 at a time.
      if (m + 4 <= mEnd) {
        gemm_tile(variant, 4, k, a + <usize>m * ldaB, ldaB, pw, pc + <usize>m * ldcB, ldcB, nc, epilogue);
        m += 4;
      }
      if (m + 2 <= mEnd) {
        gemm_tile(variant, 2, k, a + <usize>m * ldaB, ldaB, pw, pc + <usize>m * ldcB, ldcB, nc, epilogue);
        m += 2;
      }
      if (m < mEnd) {
        gemm_tile(variant, 1, k, a + <usize>m * ldaB, ldaB, pw, pc + <usize>m * ldcB, ldcB, nc, epilogue);
      }
    }
  }
}

/**
 * C = A x B + bias over rows [m0, m1) and panels [p0, p1) of the N columns.
 * Pointers are byte addresses; strides are in floats.
 */
export function gemm_bias(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  gemm_tiles(n, k, a, lda, w, c, ldc, m0, m1, p0, p1, EPILOGUE_BIAS);
}

/** C = max(A x B + bias, 0); see `gemm_bias`. */
export function gemm_bias_relu(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  gemm_tiles(n, k, a, lda, w, c, ldc, m0, m1, p0, p1, EPILOGUE_RELU);
}

/**
 * C += A x B + bias (no ReLU); see `gemm_bias`. Columns past N, in a last
 * partial panel, are neither read nor written.
 */
export function gemm_acc(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  gemm_tiles(n, k, a, lda, w, c, ldc, m0, m1, p0, p1, EPILOGUE_ACC);
}

// Rows outer: for each tile of 6 rows of [m0, m1), every panel [p0, p1)
// (the blocked driver on one tile's rows, so the same tiles and bits). For a
// shallow GEMM (the input gradient of a 1x1 convolution: depth = its output
// channels) the tile's rows of A stay in L1, the panels in L2, and C is
// written row by row, which the prefetchers follow; `gemm_tiles` writes C a
// panel's 32 bytes per row down a block of up to 96 KiB / (4k) rows, each
// tile's epilogue waiting for its lines of C.

/** `gemm_bias` with rows outer (see above): the same bits, faster for a shallow depth k. */
export function gemm_bias_by_rows(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  for (let m = m0; m < m1; m += GEMM_MR) gemm_bias(n, k, a, lda, w, c, ldc, m, min(m + GEMM_MR, m1), p0, p1);
}

/** `gemm_acc` with rows outer (see above): the same bits, faster for a shallow depth k. */
export function gemm_acc_by_rows(
  n: i32, k: i32, a: usize, lda: i32, w: usize, c: usize, ldc: i32,
  m0: i32, m1: i32, p0: i32, p1: i32,
): void {
  for (let m = m0; m < m1; m += GEMM_MR) gemm_acc(n, k, a, lda, w, c, ldc, m, min(m + GEMM_MR, m1), p0, p1);
}
