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
  return <usize>v * <usize>(c + oc) * 4;
}

// Output k of F(2, 3)'s B^T (points 0, 1, -1, inf) on d0..d3 (k a constant after inlining).
@inline function bt4v(k: i32, d0: v128, d1: v128, d2: v128, d3: v128): v128 {
  if (k == 0) return f32x4.sub(d2, d0);
  if (k == 1) return f32x4.add(d1, d2);
  if (k == 2) return f32x4.sub(d2, d1);
  return f32x4.sub(d3, d1);
}

// Output k of B^T (points 0, +-1, +-2, inf) on d0..d5 (k a constant after inlining).
@inline function bt6v(k: i32, d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128): v128 {
  const four = f32x4.splat(4), five = f32x4.splat(5), two = f32x4.splat(2);
  // r0 = 4 d0 - 5 d2 + d4; r5 = 4 d1 - 5 d3 + d5
  if (k == 0) return f32x4.add(f32x4.sub(f32x4.mul(four, d0), f32x4.mul(five, d2)), d4);
  if (k == 5) return f32x4.add(f32x4.sub(f32x4.mul(four, d1), f32x4.mul(five, d3)), d5);
  if (k == 1 || k == 2) {
    // r1,2 = d4 - 4 d2 -+ (4 d1 - d3)
    const a = f32x4.sub(d4, f32x4.mul(four, d2)), b = f32x4.sub(f32x4.mul(four, d1), d3);
    return k == 1 ? f32x4.sub(a, b) : f32x4.add(a, b);
  }
  // r3,4 = d4 - d2 -+ (2 d1 - 2 d3)
  const e = f32x4.sub(d4, d2), f = f32x4.mul(two, f32x4.sub(d1, d3));
  return k == 3 ? f32x4.sub(e, f) : f32x4.add(e, f);
}

// B^T (n = 6) on d0..d5, written to q, q + qstep, ...
@inline function bt6(
  d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128, q: usize, qstep: usize,
): void {
  v128.store(q, bt6v(0, d0, d1, d2, d3, d4, d5));
  v128.store(q + qstep, bt6v(1, d0, d1, d2, d3, d4, d5));
  v128.store(q + 2 * qstep, bt6v(2, d0, d1, d2, d3, d4, d5));
  v128.store(q + 3 * qstep, bt6v(3, d0, d1, d2, d3, d4, d5));
  v128.store(q + 4 * qstep, bt6v(4, d0, d1, d2, d3, d4, d5));
  v128.store(q + 5 * qstep, bt6v(5, d0, d1, d2, d3, d4, d5));
}

// B^T (n = 4) on d0..d3, written to q, q + qstep, ...
@inline function bt4(d0: v128, d1: v128, d2: v128, d3: v128, q: usize, qstep: usize): void {
  v128.store(q, bt4v(0, d0, d1, d2, d3));
  v128.store(q + qstep, bt4v(1, d0, d1, d2, d3));
  v128.store(q + 2 * qstep, bt4v(2, d0, d1, d2, d3));
  v128.store(q + 3 * qstep, bt4v(3, d0, d1, d2, d3));
}

// The input vector at p, or zeros where the patch lies outside the image.
@inline function patch(p: usize, inside: bool): v128 {
  return inside ? v128.load(p) : f32x4.splat(0);
}

// V = B^T d B for one 4-channel group of a tile: d is the n x n patch whose
// top-left pixel (iy0, ix0) is at p (pixels xb bytes apart, rows rowb), zeros
// outside the h x w image unless the whole patch lies inside (`all`, a
// constant after inlining); V[i * n + j] goes to dst + (i * n + j) * vMat.
// Each patch row goes through B^T into registers (locals: V8 spills what does
// not fit to its stack, whose accesses carry no bounds check, where a scratch
// round trip in Wasm memory cost a compare and branch per vector each way),
// then each column through B^T into V.
@inline function input_tile(
  n: i32, p: usize, xb: usize, rowb: usize, iy0: i32, h: i32, ix0: i32, w: i32, all: bool,
  dst: usize, vMat: usize,
): void {
  const in0 = all || <u32>ix0 < <u32>w, in1 = all || <u32>(ix0 + 1) < <u32>w;
  const in2 = all || <u32>(ix0 + 2) < <u32>w, in3 = all || <u32>(ix0 + 3) < <u32>w;
  if (n == 4) {
    let r = all || <u32>iy0 < <u32>h, q = p;
    let d0 = patch(q, r && in0), d1 = patch(q + xb, r && in1);
    let d2 = patch(q + 2 * xb, r && in2), d3 = patch(q + 3 * xb, r && in3);
    const r00 = bt4v(0, d0, d1, d2, d3), r01 = bt4v(1, d0, d1, d2, d3);
    const r02 = bt4v(2, d0, d1, d2, d3), r03 = bt4v(3, d0, d1, d2, d3);
    r = all || <u32>(iy0 + 1) < <u32>h; q += rowb;
    d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1);
    d2 = patch(q + 2 * xb, r && in2); d3 = patch(q + 3 * xb, r && in3);
    const r10 = bt4v(0, d0, d1, d2, d3), r11 = bt4v(1, d0, d1, d2, d3);
    const r12 = bt4v(2, d0, d1, d2, d3), r13 = bt4v(3, d0, d1, d2, d3);
    r = all || <u32>(iy0 + 2) < <u32>h; q += rowb;
    d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1);
    d2 = patch(q + 2 * xb, r && in2); d3 = patch(q + 3 * xb, r && in3);
    const r20 = bt4v(0, d0, d1, d2, d3), r21 = bt4v(1, d0, d1, d2, d3);
    const r22 = bt4v(2, d0, d1, d2, d3), r23 = bt4v(3, d0, d1, d2, d3);
    r = all || <u32>(iy0 + 3) < <u32>h; q += rowb;
    d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1);
    d2 = patch(q + 2 * xb, r && in2); d3 = patch(q + 3 * xb, r && in3);
    const r30 = bt4v(0, d0, d1, d2, d3), r31 = bt4v(1, d0, d1, d2, d3);
    const r32 = bt4v(2, d0, d1, d2, d3), r33 = bt4v(3, d0, d1, d2, d3);
    const step = 4 * vMat;
    bt4(r00, r10, r20, r30, dst, step);
    bt4(r01, r11, r21, r31, dst + vMat, step);
    bt4(r02, r12, r22, r32, dst + 2 * vMat, step);
    bt4(r03, r13, r23, r33, dst + 3 * vMat, step);
    return;
  }
  const in4 = all || <u32>(ix0 + 4) < <u32>w, in5 = all || <u32>(ix0 + 5) < <u32>w;
  let r = all || <u32>iy0 < <u32>h, q = p;
  let d0 = patch(q, r && in0), d1 = patch(q + xb, r && in1), d2 = patch(q + 2 * xb, r && in2);
  let d3 = patch(q + 3 * xb, r && in3), d4 = patch(q + 4 * xb, r && in4);
  let d5 = patch(q + 5 * xb, r && in5);
  const r00 = bt6v(0, d0, d1, d2, d3, d4, d5), r01 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r02 = bt6v(2, d0, d1, d2, d3, d4, d5), r03 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r04 = bt6v(4, d0, d1, d2, d3, d4, d5), r05 = bt6v(5, d0, d1, d2, d3, d4, d5);
  r = all || <u32>(iy0 + 1) < <u32>h; q += rowb;
  d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1); d2 = patch(q + 2 * xb, r && in2);
  d3 = patch(q + 3 * xb, r && in3); d4 = patch(q + 4 * xb, r && in4);
  d5 = patch(q + 5 * xb, r && in5);
  const r10 = bt6v(0, d0, d1, d2, d3, d4, d5), r11 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r12 = bt6v(2, d0, d1, d2, d3, d4, d5), r13 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r14 = bt6v(4, d0, d1, d2, d3, d4, d5), r15 = bt6v(5, d0, d1, d2, d3, d4, d5);
  r = all || <u32>(iy0 + 2) < <u32>h; q += rowb;
  d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1); d2 = patch(q + 2 * xb, r && in2);
  d3 = patch(q + 3 * xb, r && in3); d4 = patch(q + 4 * xb, r && in4);
  d5 = patch(q + 5 * xb, r && in5);
  const r20 = bt6v(0, d0, d1, d2, d3, d4, d5), r21 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r22 = bt6v(2, d0, d1, d2, d3, d4, d5), r23 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r24 = bt6v(4, d0, d1, d2, d3, d4, d5), r25 = bt6v(5, d0, d1, d2, d3, d4, d5);
  r = all || <u32>(iy0 + 3) < <u32>h; q += rowb;
  d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1); d2 = patch(q + 2 * xb, r && in2);
  d3 = patch(q + 3 * xb, r && in3); d4 = patch(q + 4 * xb, r && in4);
  d5 = patch(q + 5 * xb, r && in5);
  const r30 = bt6v(0, d0, d1, d2, d3, d4, d5), r31 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r32 = bt6v(2, d0, d1, d2, d3, d4, d5), r33 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r34 = bt6v(4, d0, d1, d2, d3, d4, d5), r35 = bt6v(5, d0, d1, d2, d3, d4, d5);
  r = all || <u32>(iy0 + 4) < <u32>h; q += rowb;
  d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1); d2 = patch(q + 2 * xb, r && in2);
  d3 = patch(q + 3 * xb, r && in3); d4 = patch(q + 4 * xb, r && in4);
  d5 = patch(q + 5 * xb, r && in5);
  const r40 = bt6v(0, d0, d1, d2, d3, d4, d5), r41 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r42 = bt6v(2, d0, d1, d2, d3, d4, d5), r43 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r44 = bt6v(4, d0, d1, d2, d3, d4, d5), r45 = bt6v(5, d0, d1, d2, d3, d4, d5);
  r = all || <u32>(iy0 + 5) < <u32>h; q += rowb;
  d0 = patch(q, r && in0); d1 = patch(q + xb, r && in1); d2 = patch(q + 2 * xb, r && in2);
  d3 = patch(q + 3 * xb, r && in3); d4 = patch(q + 4 * xb, r && in4);
  d5 = patch(q + 5 * xb, r && in5);
  const r50 = bt6v(0, d0, d1, d2, d3, d4, d5), r51 = bt6v(1, d0, d1, d2, d3, d4, d5);
  const r52 = bt6v(2, d0, d1, d2, d3, d4, d5), r53 = bt6v(3, d0, d1, d2, d3, d4, d5);
  const r54 = bt6v(4, d0, d1, d2, d3, d4, d5), r55 = bt6v(5, d0, d1, d2, d3, d4, d5);
  const step = 6 * vMat;
  bt6(r00, r10, r20, r30, r40, r50, dst, step);
  bt6(r01, r11, r21, r31, r41, r51, dst + vMat, step);
  bt6(r02, r12, r22, r32, r42, r52, dst + 2 * vMat, step);
  bt6(r03, r13, r23, r33, r43, r53, dst + 3 * vMat, step);
  bt6(r04, r14, r24, r34, r44, r54, dst + 4 * vMat, step);
  bt6(r05, r15, r25, r35, r45, r55, dst + 5 * vMat, step);
}

// The input transforms of c / 4 channel groups of one tile (c a multiple of
// 4; the group's vectors 16 bytes apart at p and at dst): `input_tile`'s four
// forms (n = 4 or 6, inside the image or not), each one function that every
// forward and gradient kernel calls, rather than inlined into each.
function input_tiles6_inside(p: usize, xb: usize, rowb: usize, c: i32, dst: usize, vMat: usize): void {
  for (let cg = 0; cg < c; cg += 4, p += 16, dst += 16) input_tile(6, p, xb, rowb, 0, 1, 0, 1, true, dst, vMat);
}

function input_tiles6_edge(
  p: usize, xb: usize, rowb: usize, iy0: i32, h: i32, ix0: i32, w: i32, c: i32, dst: usize, vMat: usize,
): void {
  for (let cg = 0; cg < c; cg += 4, p += 16, dst += 16) input_tile(6, p, xb, rowb, iy0, h, ix0, w, false, dst, vMat);
}

function input_tiles4_inside(p: usize, xb: usize, rowb: usize, c: i32, dst: usize, vMat: usize): void {
  for (let cg = 0; cg < c; cg += 4, p += 16, dst += 16) input_tile(4, p, xb, rowb, 0, 1, 0, 1, true, dst, vMat);
}

function input_tiles4_edge(
  p: usize, xb: usize, rowb: usize, iy0: i32, h: i32, ix0: i32, w: i32, c: i32, dst: usize, vMat: usize,
): void {
  for (let cg = 0; cg < c; cg += 4, p += 16, dst += 16) input_tile(4, p, xb, rowb, iy0, h, ix0, w, false, dst, vMat);
}

/**
 * V = B^T d B (n x n transform points, n = 4 or 6: a constant after inlining)
 * for channels [0, c) of the tile whose top-left patch pixel (iy0, ix0) is at
 * p, into dst + (i * n + j) * vMat (see `input_tile`); `inside`: the patch
 * lies wholly inside the h x w image (no zeros to insert).
 */
@inline export function input_tiles(
  n: i32, p: usize, xb: usize, rowb: usize, iy0: i32, h: i32, ix0: i32, w: i32, inside: bool,
  c: i32, dst: usize, vMat: usize,
): void {
  if (n == 6) {
    if (inside) input_tiles6_inside(p, xb, rowb, c, dst, vMat);
    else input_tiles6_edge(p, xb, rowb, iy0, h, ix0, w, c, dst, vMat);
  } else {
    if (inside) input_tiles4_inside(p, xb, rowb, c, dst, vMat);
    else input_tiles4_edge(p, xb, rowb, iy0, h, ix0, w, c, dst, vMat);
  }
}

// Output k of A^T for an output tile of m (n = 6: points 0, +-1, +-2, inf;
// F(4, 3) keeps four results, F(2, 5) two) on m0..m5; k, m constants after inlining.
@inline function at6v(m: i32, k: i32, m0: v128, m1: v128, m2: v128, m3: v128, m4: v128, m5: v128): v128 {
  const s12 = f32x4.add(m1, m2), d12 = f32x4.sub(m1, m2);
  const s34 = f32x4.add(m3, m4), d34 = f32x4.sub(m3, m4);
  if (k == 0) return f32x4.add(f32x4.add(m0, s12), s34);
  if (k == 1) {
    const o1 = f32x4.add(d12, f32x4.mul(f32x4.splat(2), d34));
    return m == 2 ? f32x4.add(o1, m5) : o1;
  }
  if (k == 2) return f32x4.add(s12, f32x4.mul(f32x4.splat(4), s34));
  return f32x4.add(f32x4.add(d12, f32x4.mul(f32x4.splat(8), d34)), m5);
}

// Output k of F(2, 3)'s A^T (points 0, 1, -1, inf) on m0..m3.
@inline function at4v(k: i32, m0: v128, m1: v128, m2: v128, m3: v128): v128 {
  if (k == 0) return f32x4.add(f32x4.add(m0, m1), m2);
  return f32x4.add(f32x4.sub(m1, m2), m3);
}

// One output column of a tile (n = 6): A^T on m0..m5, the first `count` of
// the m results to q, q + qstep, ..., with bias b and the EPILOGUE_* `epilogue`.
@inline function column6(
  m: i32, m0: v128, m1: v128, m2: v128, m3: v128, m4: v128, m5: v128,
  q: usize, qstep: usize, count: i32, epilogue: i32, b: v128,
): void {
  finish(q, at6v(m, 0, m0, m1, m2, m3, m4, m5), epilogue, b);
  if (count > 1) finish(q + qstep, at6v(m, 1, m0, m1, m2, m3, m4, m5), epilogue, b);
  if (m > 2 && count > 2) finish(q + 2 * qstep, at6v(m, 2, m0, m1, m2, m3, m4, m5), epilogue, b);
  if (m > 3 && count > 3) finish(q + 3 * qstep, at6v(m, 3, m0, m1, m2, m3, m4, m5), epilogue, b);
}

// One output column of a tile (n = 4, m = 2); as column6.
@inline function column4(
  m0: v128, m1: v128, m2: v128, m3: v128, q: usize, qstep: usize, count: i32, epilogue: i32, b: v128,
): void {
  finish(q, at4v(0, m0, m1, m2, m3), epilogue, b);
  if (count > 1) finish(q + qstep, at4v(1, m0, m1, m2, m3), epilogue, b);
}

// y = A^T M A for one 4-channel group of a tile, with bias b and the
// EPILOGUE_* `epilogue`: M[i * n + j] at src + (i * n + j) * mMat; output
// pixel (r, j) at out + r * rowb + j * yb for r < rowsOut, j < cols (the
// tile may overhang the map). Each row of M goes through A^T into registers,
// then each column through A^T into the output, as in `input_tile`.
@inline function output_tile(
  n: i32, m: i32, src: usize, mMat: usize, out: usize, yb: usize, rowb: usize,
  rowsOut: i32, cols: i32, epilogue: i32, b: v128,
): void {
  if (n == 4) {
    let q = src;
    let x0 = v128.load(q), x1 = v128.load(q + mMat), x2 = v128.load(q + 2 * mMat);
    let x3 = v128.load(q + 3 * mMat);
    const t00 = at4v(0, x0, x1, x2, x3), t01 = at4v(1, x0, x1, x2, x3);
    q += 4 * mMat;
    x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
    x3 = v128.load(q + 3 * mMat);
    const t10 = at4v(0, x0, x1, x2, x3), t11 = at4v(1, x0, x1, x2, x3);
    q += 4 * mMat;
    x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
    x3 = v128.load(q + 3 * mMat);
    const t20 = at4v(0, x0, x1, x2, x3), t21 = at4v(1, x0, x1, x2, x3);
    q += 4 * mMat;
    x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
    x3 = v128.load(q + 3 * mMat);
    const t30 = at4v(0, x0, x1, x2, x3), t31 = at4v(1, x0, x1, x2, x3);
    column4(t00, t10, t20, t30, out, rowb, rowsOut, epilogue, b);
    if (cols > 1) column4(t01, t11, t21, t31, out + yb, rowb, rowsOut, epilogue, b);
    return;
  }
  let q = src;
  let x0 = v128.load(q), x1 = v128.load(q + mMat), x2 = v128.load(q + 2 * mMat);
  let x3 = v128.load(q + 3 * mMat), x4 = v128.load(q + 4 * mMat), x5 = v128.load(q + 5 * mMat);
  const t00 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t01 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t02 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t03 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  q += 6 * mMat;
  x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
  x3 = v128.load(q + 3 * mMat); x4 = v128.load(q + 4 * mMat); x5 = v128.load(q + 5 * mMat);
  const t10 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t11 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t12 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t13 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  q += 6 * mMat;
  x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
  x3 = v128.load(q + 3 * mMat); x4 = v128.load(q + 4 * mMat); x5 = v128.load(q + 5 * mMat);
  const t20 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t21 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t22 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t23 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  q += 6 * mMat;
  x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
  x3 = v128.load(q + 3 * mMat); x4 = v128.load(q + 4 * mMat); x5 = v128.load(q + 5 * mMat);
  const t30 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t31 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t32 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t33 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  q += 6 * mMat;
  x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
  x3 = v128.load(q + 3 * mMat); x4 = v128.load(q + 4 * mMat); x5 = v128.load(q + 5 * mMat);
  const t40 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t41 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t42 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t43 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  q += 6 * mMat;
  x0 = v128.load(q); x1 = v128.load(q + mMat); x2 = v128.load(q + 2 * mMat);
  x3 = v128.load(q + 3 * mMat); x4 = v128.load(q + 4 * mMat); x5 = v128.load(q + 5 * mMat);
  const t50 = at6v(m, 0, x0, x1, x2, x3, x4, x5), t51 = at6v(m, 1, x0, x1, x2, x3, x4, x5);
  const t52 = m > 2 ? at6v(m, 2, x0, x1, x2, x3, x4, x5) : x0;
  const t53 = m > 3 ? at6v(m, 3, x0, x1, x2, x3, x4, x5) : x0;
  column6(m, t00, t10, t20, t30, t40, t50, out, rowb, rowsOut, epilogue, b);
  if (cols > 1) column6(m, t01, t11, t21, t31, t41, t51, out + yb, rowb, rowsOut, epilogue, b);
  if (m > 2 && cols > 2) column6(m, t02, t12, t22, t32, t42, t52, out + 2 * yb, rowb, rowsOut, epilogue, b);
  if (m > 3 && cols > 3) column6(m, t03, t13, t23, t33, t43, t53, out + 3 * yb, rowb, rowsOut, epilogue, b);
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
  const vBase = scratch;
  const vMat = <usize>tb * <usize>c << 2; // bytes of one V[xi]
  const mBase = vBase + <usize>nn * vMat;
  const mMat = <usize>tb * <usize>oc << 2;
  const xb = <usize>xstride << 2, yb = <usize>ystride << 2;
  const rowb = <usize>w * xb, yrowb = <usize>w * yb; // bytes between input and output rows
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
      const p = ximg + <usize>((iy0 * w + ix0) * xstride) * 4;
      input_tiles(n, p, xb, rowb, iy0, h, ix0, w, interior, c, vBase + <usize>r * <usize>c * 4, vMat);
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
      const out = yimg + (<usize>(ty * m) * <usize>w + <usize>(tx * m)) * yb;
      const src = mBase + <usize>r * <usize>oc * 4;
      for (let og = 0; og < oc; og += 4) {
        const b = v128.load(bias + (<usize>og << 2));
        output_tile(n, m, src + (<usize>og << 2), mMat, out + (<usize>og << 2), yb, yrowb, rowsOut, cols, epilogue, b);
      }
    }
  }
}
