// Weight packing in Wasm: what src/backend/pack.ts does in TypeScript
// (packGemm, packWinograd), over weights staged in the weight region, so that
// training re-derives the packed forms after each optimizer step on every
// thread. Both kernels work in whole panels of 8 output columns [p0, p1) and
// write every float of them (bias row, padding columns), so any split of the
// panels across threads gives the same bits.
//
// The source of packed row r, column j is the float
//   src[base + gather(r; rc, ra, rb) + gather(j; cc, ca, cb)],
//   gather(x; c, a, b) = (x % c) * a + (x / c) * b,
// which covers a convolution's (kh, kw, c) rows over OIHW, a linear layer's
// NHWC-flattened input over NCHW weights, and the transposed, flipped
// input-gradient forms (negative b walks the taps backwards).

const NR: i32 = 8;

/**
 * Panels [p0, p1) of a GEMM-packed matrix of depth k and n columns at `dst`:
 * `[bias[8], B[0, 0..8], ..., B[k-1, 0..8]]` per panel, padding columns 0;
 * `bias` 0 gives a zero bias.
 *
 * A whole panel whose 8 sources lie a constant step apart (`cc` 1, or a
 * multiple of 8) is written a row of 8 floats (two v128 stores) at a time:
 * with step 1 from two v128 loads; when each column's rows are a permutation
 * of k contiguous floats (`rb` 1 and `rc * ra` = k, or the identity), from one
 * v128 load of 4 consecutive sources per column, transposed 8 x 4 into 4
 * rows; otherwise from 8 scalar loads, row r of all the whole panels before
 * row r + 1. Partial panels go float by float.
 * Every path copies the same floats to the same places.
 */
export function pack_gemm(
  src: usize, base: i32, k: i32, n: i32,
  rc: i32, ra: i32, rb: i32,
  cc: i32, ca: i32, cb: i32,
  bias: usize, dst: usize, p0: i32, p1: i32,
): void {
  // The identity row gather as a permutation: rows r % 1 = 0, r / 1 = r.
  if (rc == 1 && rb == 1) ra = k;
  const permutation = rb == 1 && rc * ra == k;
  const step = cc == 1 ? cb : ca;
  if ((cc == 1 || cc % NR == 0) && step != 1 && !permutation) {
    // Whole panels of 8 strided columns, rows outer: row r of every panel in turn. Panel by panel
    // (as before) a row of 8 loads took 8 cache lines that the other panels reading the
    // same lines came back for much later (a linear layer's transposed, NHWC-gathered form: 3 GB/s);
    // row by row those lines stay in L1. The same floats to the same places.
    const full = min<i32>(p1, n / NR);
    if (full > p0) {
      pack_panels_by_rows(src, base, k, rc, ra, rb, cc, ca, cb, step, bias, dst, p0, full);
      p0 = full;
    }
  }
  for (let p = p0; p < p1; p++) {
    const panel = dst + (<usize>(p * (k + 1) * NR) << 2);
    const j0 = p * NR;
    const cols = min<i32>(NR, n - j0);
    // Bias row.
    for (let j = 0; j < NR; j++) {
      store<f32>(panel + (<usize>j << 2), j < cols && bias != 0 ? load<f32>(bias + (<usize>(j0 + j) << 2)) : 0);
    }
    const rows = panel + (<usize>NR << 2);
    if (cols == NR && (cc == 1 || cc % NR == 0)) {
      // Column j0 + j reads start + j * step (j0 % cc + j < cc when 8 divides cc).
      const start = base + (j0 % cc) * ca + (j0 / cc) * cb;
      if (step == 1) {
        pack_rows_contiguous(src + (<usize>start << 2), k, rc, ra, rb, rows);
      } else {
        // A permutation (the other strided panels went through pack_panels_by_rows above).
        pack_rows_transposed(src + (<usize>start << 2), step, k, rc, ra, rows);
      }
      continue;
    }
    for (let j = 0; j < NR; j++) {
      let at = rows + (<usize>j << 2);
      if (j >= cols) {
        for (let r = 0; r < k; r++, at += NR << 2) store<f32>(at, 0);
        continue;
      }
      const col = j0 + j;
      const colTerm = base + (col % cc) * ca + (col / cc) * cb;
      // r % rc and r / rc kept incrementally.
      let ch = 0, q = 0;
      for (let r = 0; r < k; r++, at += NR << 2) {
        store<f32>(at, load<f32>(src + (<usize>(colTerm + ch * ra + q * rb) << 2)));
        if (++ch == rc) {
          ch = 0;
          q++;
        }
      }
    }
  }
}

// Full panels [p0, p1) whose column j0 + j reads start(p) + j * step + gather(r): the bias rows,
// then rows [0, k) of every panel, row outer (8 scalar loads and two v128 stores a panel row).
function pack_panels_by_rows(
  src: usize, base: i32, k: i32, rc: i32, ra: i32, rb: i32,
  cc: i32, ca: i32, cb: i32, step: i32, bias: usize, dst: usize, p0: i32, p1: i32,
): void {
  const panelBytes = <usize>((k + 1) * NR) << 2;
  for (let p = p0; p < p1; p++) {
    const panel = dst + <usize>p * panelBytes;
    const j0 = p * NR;
    if (bias != 0) {
      v128.store(panel, v128.load(bias + (<usize>j0 << 2)));
      v128.store(panel, v128.load(bias + (<usize>j0 << 2), 16), 16);
    } else {
      v128.store(panel, i32x4.splat(0));
      v128.store(panel, i32x4.splat(0), 16);
    }
  }
  const d = <usize>step << 2;
  let ch = 0, term = 0, qTerm = 0;
  for (let r = 0; r < k; r++) {
    let at = dst + <usize>p0 * panelBytes + (<usize>((r + 1) * NR) << 2);
    for (let p = p0; p < p1; p++, at += panelBytes) {
      const j0 = p * NR;
      const q0 = src + (<usize>(base + (j0 % cc) * ca + (j0 / cc) * cb + term) << 2), q4 = q0 + 4 * d;
      let lo = f32x4.splat(load<f32>(q0));
      lo = f32x4.replace_lane(lo, 1, load<f32>(q0 + d));
      lo = f32x4.replace_lane(lo, 2, load<f32>(q0 + 2 * d));
      lo = f32x4.replace_lane(lo, 3, load<f32>(q0 + 3 * d));
      let hi = f32x4.splat(load<f32>(q4));
      hi = f32x4.replace_lane(hi, 1, load<f32>(q4 + d));
      hi = f32x4.replace_lane(hi, 2, load<f32>(q4 + 2 * d));
      hi = f32x4.replace_lane(hi, 3, load<f32>(q4 + 3 * d));
      v128.store(at, lo);
      v128.store(at, hi, 16);
    }
    if (++ch == rc) {
      ch = 0;
      qTerm += rb;
      term = qTerm;
    } else {
      term += ra;
    }
  }
}

// Rows [0, k) of a panel whose 8 columns are contiguous: row r is the 8 floats at from + gather(r).
@inline function pack_rows_contiguous(from: usize, k: i32, rc: i32, ra: i32, rb: i32, at: usize): void {
  let ch = 0, term = 0, qTerm = 0;
  for (let r = 0; r < k; r++, at += NR << 2) {
    const q = from + (<usize>term << 2);
    v128.store(at, v128.load(q));
    v128.store(at, v128.load(q, 16), 16);
    if (++ch == rc) {
      ch = 0;
      qTerm += rb;
      term = qTerm;
    } else {
      term += ra;
    }
  }
}

// Rows [0, k) of a panel whose column j reads the k contiguous floats at from + j * step, source s
// going to row (s % ra) * rc + s / ra (the inverse of gather(r) = (r % rc) * ra + r / rc): 4
// sources of each column at once, transposed into 4 rows of 8.
@inline function pack_rows_transposed(from: usize, step: i32, k: i32, rc: i32, ra: i32, rows: usize): void {
  const d = <usize>step << 2;
  const rowBytes = <usize>(NR << 2);
  let s = 0;
  // Row of source s, kept incrementally: sa = s % ra, sq = s / ra.
  let sa = 0, sq = 0;
  for (; s + 4 <= k; s += 4) {
    const q0 = from + (<usize>s << 2), q4 = q0 + 4 * d;
    const c0 = v128.load(q0), c1 = v128.load(q0 + d), c2 = v128.load(q0 + 2 * d), c3 = v128.load(q0 + 3 * d);
    const c4 = v128.load(q4), c5 = v128.load(q4 + d), c6 = v128.load(q4 + 2 * d), c7 = v128.load(q4 + 3 * d);
    // 4 x 4 transposes: lo_i = (c0[i], c1[i], c2[i], c3[i]), hi_i from c4..c7.
    const a01 = v128.shuffle<f32>(c0, c1, 0, 4, 1, 5), b01 = v128.shuffle<f32>(c0, c1, 2, 6, 3, 7);
    const a23 = v128.shuffle<f32>(c2, c3, 0, 4, 1, 5), b23 = v128.shuffle<f32>(c2, c3, 2, 6, 3, 7);
    const a45 = v128.shuffle<f32>(c4, c5, 0, 4, 1, 5), b45 = v128.shuffle<f32>(c4, c5, 2, 6, 3, 7);
    const a67 = v128.shuffle<f32>(c6, c7, 0, 4, 1, 5), b67 = v128.shuffle<f32>(c6, c7, 2, 6, 3, 7);
    let at = rows + <usize>(sa * rc + sq) * rowBytes;
    v128.store(at, v128.shuffle<f32>(a01, a23, 0, 1, 4, 5));
    v128.store(at, v128.shuffle<f32>(a45, a67, 0, 1, 4, 5), 16);
    if (++sa == ra) { sa = 0; sq++; }
    at = rows + <usize>(sa * rc + sq) * rowBytes;
    v128.store(at, v128.shuffle<f32>(a01, a23, 2, 3, 6, 7));
    v128.store(at, v128.shuffle<f32>(a45, a67, 2, 3, 6, 7), 16);
    if (++sa == ra) { sa = 0; sq++; }
    at = rows + <usize>(sa * rc + sq) * rowBytes;
    v128.store(at, v128.shuffle<f32>(b01, b23, 0, 1, 4, 5));
    v128.store(at, v128.shuffle<f32>(b45, b67, 0, 1, 4, 5), 16);
    if (++sa == ra) { sa = 0; sq++; }
    at = rows + <usize>(sa * rc + sq) * rowBytes;
    v128.store(at, v128.shuffle<f32>(b01, b23, 2, 3, 6, 7));
    v128.store(at, v128.shuffle<f32>(b45, b67, 2, 3, 6, 7), 16);
    if (++sa == ra) { sa = 0; sq++; }
  }
  for (; s < k; s++) {
    const q = from + (<usize>s << 2);
    const at = rows + <usize>(sa * rc + sq) * rowBytes;
    for (let j = 0; j < NR; j++) store<f32>(at + (<usize>j << 2), load<f32>(q + <usize>j * d));
    if (++sa == ra) { sa = 0; sq++; }
  }
}

/** Bytes of scratch `pack_winograd` needs: G (at most 6 x 5), each entry splat in an f64x2. */
export function pack_winograd_scratch_bytes(): i32 {
  return 6 * 5 * 16;
}

// The interpolation point of row j of G: 0, 1, -1, 2, -2.
@inline function point(j: i32): f64 {
  return j == 0 ? 0.0 : (j & 1 ? <f64>((j + 1) >> 1) : -<f64>(j >> 1));
}

/**
 * Panels [p0, p1) (and, when p0 is 0, the bias) of the Winograd form of an
 * r x r convolution with `c` inputs and `oc` outputs for an n x n transform:
 * bias (padded to 4) then n^2 GEMM-packed matrices of depth c with zero bias
 * rows, U = G g G^T computed in f64 and rounded once, as packWinograd in
 * src/backend/pack.ts does (same G, same order of operations; two adjacent
 * outputs at once in the lanes of f64x2, whose operations are the scalar
 * ones lane by lane). Tap t (row-major in the kernel) of output o, input ci
 * is src[base + o * os + ci * cs + t * ts].
 */
export function pack_winograd(
  src: usize, base: i32, os: i32, cs: i32, ts: i32,
  bias: usize, c: i32, oc: i32, n: i32, r: i32,
  dst: usize, scratch: usize, p0: i32, p1: i32,
): void {
  // G (n x r): row j < n - 1 is a_j^t / prod_{l != j} (a_j - a_l); the last row picks t = r - 1.
  // Stored splat (each entry in both f64 lanes), row-major: v128 loads at constant offsets.
  const g = scratch;
  for (let j = 0; j < n - 1; j++) {
    const a = point(j);
    let norm: f64 = 1;
    for (let l = 0; l < n - 1; l++) if (l != j) norm *= a - point(l);
    let power: f64 = 1;
    for (let t = 0; t < r; t++) {
      v128.store(g + (<usize>(j * r + t) << 4), f64x2.splat(power / norm));
      power *= a;
    }
  }
  for (let t = 0; t < r; t++) {
    v128.store(g + (<usize>((n - 1) * r + t) << 4), f64x2.splat(t == r - 1 ? 1.0 : 0.0));
  }

  const biasFloats = (oc + 3) & ~3;
  if (p0 == 0) {
    for (let o = 0; o < biasFloats; o++) {
      store<f32>(dst + (<usize>o << 2), o < oc && bias != 0 ? load<f32>(bias + (<usize>o << 2)) : 0);
    }
  }
  const panels = (oc + NR - 1) / NR;
  const size = panels * (c + 1) * NR;
  const mats = dst + (<usize>biasFloats << 2);
  const nn = n * n, taps = r * r;
  for (let p = p0; p < p1; p++) {
    const panel = p * (c + 1) * NR;
    for (let m = 0; m < nn; m++) {
      const at = mats + (<usize>(m * size + panel) << 2);
      for (let j = 0; j < NR; j++) store<f32>(at + (<usize>j << 2), 0);
    }
    // Input channel outer, output pairs inner: the 8 outputs of a panel row share one cache
    // line in each of the n^2 matrices (which lie far apart).
    for (let ci = 0; ci < c; ci++) {
      const row0 = mats + (<usize>(panel + NR + ci * NR) << 2);
      for (let jj = 0; jj < NR; jj += 2) {
        const o = p * NR + jj;
        const row = row0 + (<usize>jj << 2);
        if (o >= oc) {
          for (let m = 0; m < nn; m++) store<u64>(row + (<usize>(m * size) << 2), 0);
          continue;
        }
        // A missing second output (oc odd) computes from zeros: +0 everywhere, as the padding.
        const two = o + 1 < oc;
        const k0 = base + o * os + ci * cs;
        if (r == 3) {
          winograd_pair_r3(src, k0, os, ts, two, g, n, row, <usize>size << 2);
        } else {
          winograd_pair_r5(src, k0, os, ts, two, g, n, row, <usize>size << 2);
        }
      }
    }
  }
}

// Tap t of outputs o (lane 0) and o + 1 (lane 1, 0 without a second output) in f64.
@inline function tap(src: usize, k0: i32, os: i32, ts: i32, t: i32, two: bool): v128 {
  const w0 = <f64>load<f32>(src + (<usize>(k0 + t * ts) << 2));
  const w1 = two ? <f64>load<f32>(src + (<usize>(k0 + os + t * ts) << 2)) : 0.0;
  return f64x2.replace_lane(f64x2.splat(w0), 1, w1);
}

// ((0 + a0 b0) + a1 b1) + a2 b2, lane-wise in f64: one entry of G g or of (G g) G^T.
@inline function dot3(a0: v128, b0: v128, a1: v128, b1: v128, a2: v128, b2: v128): v128 {
  const s = f64x2.add(f64x2.splat(0), f64x2.mul(a0, b0));
  return f64x2.add(f64x2.add(s, f64x2.mul(a1, b1)), f64x2.mul(a2, b2));
}

// The same for 5 terms.
@inline function dot5(
  a0: v128, b0: v128, a1: v128, b1: v128, a2: v128, b2: v128, a3: v128, b3: v128, a4: v128, b4: v128,
): v128 {
  const s = f64x2.add(f64x2.add(f64x2.splat(0), f64x2.mul(a0, b0)), f64x2.mul(a1, b1));
  return f64x2.add(f64x2.add(f64x2.add(s, f64x2.mul(a2, b2)), f64x2.mul(a3, b3)), f64x2.mul(a4, b4));
}

// U = G g G^T of a 3 x 3 kernel for two outputs: the taps in registers, each row i of G g
// (h0..h2) computed once, then U[i][0..n) from it; U[i][j] to `row` + (n i + j) matrices
// (`mb` bytes apart), rounded to f32. The products and sums are pack_winograd's former
// loops' (and packWinograd's), in the same order: sum = 0; sum += G[i][t] g[t][col] for t;
// then sum = 0; sum += gg[i][t] G[j][t] for t.
function winograd_pair_r3(
  src: usize, k0: i32, os: i32, ts: i32, two: bool, g: usize, n: i32, row: usize, mb: usize,
): void {
  const w0 = tap(src, k0, os, ts, 0, two), w1 = tap(src, k0, os, ts, 1, two), w2 = tap(src, k0, os, ts, 2, two);
  const w3 = tap(src, k0, os, ts, 3, two), w4 = tap(src, k0, os, ts, 4, two), w5 = tap(src, k0, os, ts, 5, two);
  const w6 = tap(src, k0, os, ts, 6, two), w7 = tap(src, k0, os, ts, 7, two), w8 = tap(src, k0, os, ts, 8, two);
  let out = row;
  for (let i = 0; i < n; i++) {
    const gi = g + (<usize>(i * 3) << 4);
    const g0 = v128.load(gi), g1 = v128.load(gi, 16), g2 = v128.load(gi, 32);
    const h0 = dot3(g0, w0, g1, w3, g2, w6);
    const h1 = dot3(g0, w1, g1, w4, g2, w7);
    const h2 = dot3(g0, w2, g1, w5, g2, w8);
    let gj = g;
    for (let j = 0; j < n; j++, gj += 48, out += mb) {
      const u = dot3(h0, v128.load(gj), h1, v128.load(gj, 16), h2, v128.load(gj, 32));
      v128.store64_lane(out, f32x4.demote_f64x2_zero(u), 0);
    }
  }
}

// The same for a 5 x 5 kernel.
function winograd_pair_r5(
  src: usize, k0: i32, os: i32, ts: i32, two: bool, g: usize, n: i32, row: usize, mb: usize,
): void {
  const w0 = tap(src, k0, os, ts, 0, two), w1 = tap(src, k0, os, ts, 1, two), w2 = tap(src, k0, os, ts, 2, two);
  const w3 = tap(src, k0, os, ts, 3, two), w4 = tap(src, k0, os, ts, 4, two), w5 = tap(src, k0, os, ts, 5, two);
  const w6 = tap(src, k0, os, ts, 6, two), w7 = tap(src, k0, os, ts, 7, two), w8 = tap(src, k0, os, ts, 8, two);
  const w9 = tap(src, k0, os, ts, 9, two), w10 = tap(src, k0, os, ts, 10, two);
  const w11 = tap(src, k0, os, ts, 11, two), w12 = tap(src, k0, os, ts, 12, two);
  const w13 = tap(src, k0, os, ts, 13, two), w14 = tap(src, k0, os, ts, 14, two);
  const w15 = tap(src, k0, os, ts, 15, two), w16 = tap(src, k0, os, ts, 16, two);
  const w17 = tap(src, k0, os, ts, 17, two), w18 = tap(src, k0, os, ts, 18, two);
  const w19 = tap(src, k0, os, ts, 19, two), w20 = tap(src, k0, os, ts, 20, two);
  const w21 = tap(src, k0, os, ts, 21, two), w22 = tap(src, k0, os, ts, 22, two);
  const w23 = tap(src, k0, os, ts, 23, two), w24 = tap(src, k0, os, ts, 24, two);
  let out = row;
  for (let i = 0; i < n; i++) {
    const gi = g + (<usize>(i * 5) << 4);
    const g0 = v128.load(gi), g1 = v128.load(gi, 16), g2 = v128.load(gi, 32);
    const g3 = v128.load(gi, 48), g4 = v128.load(gi, 64);
    const h0 = dot5(g0, w0, g1, w5, g2, w10, g3, w15, g4, w20);
    const h1 = dot5(g0, w1, g1, w6, g2, w11, g3, w16, g4, w21);
    const h2 = dot5(g0, w2, g1, w7, g2, w12, g3, w17, g4, w22);
    const h3 = dot5(g0, w3, g1, w8, g2, w13, g3, w18, g4, w23);
    const h4 = dot5(g0, w4, g1, w9, g2, w14, g3, w19, g4, w24);
    let gj = g;
    for (let j = 0; j < n; j++, gj += 80, out += mb) {
      const u = dot5(
        h0, v128.load(gj), h1, v128.load(gj, 16), h2, v128.load(gj, 32), h3, v128.load(gj, 48),
        h4, v128.load(gj, 64),
      );
      v128.store64_lane(out, f32x4.demote_f64x2_zero(u), 0);
    }
  }
}

/**
 * Output channels [o0, o1) of a convolution with an eval-mode BatchNorm
 * folded in, the bits of `foldBatchNorm` in TypeScript (f64, each result
 * rounded once to f32):
 *   s = gamma[o] / sqrt(var[o] + eps),  W'[o, i] = W[o, i] * s,  b'[o] = beta[o] - mean[o] * s.
 * `bn` holds gamma, beta, running mean and running var, n floats each, back
 * to back; W is [n, k] (OIHW flattened) at `w`, W' goes to `dw`, b' to `db`.
 */
export function fold_batchnorm(
  w: usize, bn: usize, eps: f64, n: i32, k: i32,
  dw: usize, db: usize, o0: i32, o1: i32,
): void {
  const nb = <usize>n << 2;
  for (let o = o0; o < o1; o++) {
    const at = <usize>o << 2;
    const scale = <f64>load<f32>(bn + at) / Math.sqrt(<f64>load<f32>(bn + 3 * nb + at) + eps);
    const src = w + (<usize>(o * k) << 2);
    const dst = dw + (<usize>(o * k) << 2);
    const vs = f64x2.splat(scale);
    let i = 0;
    for (; i + 4 <= k; i += 4) {
      const x = v128.load(src + (<usize>i << 2));
      const lo = f64x2.mul(f64x2.promote_low_f32x4(x), vs);
      const hi = f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(x, x, 2, 3, 2, 3)), vs);
      v128.store(
        dst + (<usize>i << 2),
        v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5),
      );
    }
    for (; i < k; i++) {
      store<f32>(dst + (<usize>i << 2), <f32>(<f64>load<f32>(src + (<usize>i << 2)) * scale));
    }
    const beta = <f64>load<f32>(bn + nb + at);
    const mean = <f64>load<f32>(bn + 2 * nb + at);
    store<f32>(db + at, <f32>(beta - mean * scale));
  }
}
