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

/**
 * Bytes of scratch `pack_winograd` needs: G (at most 6 x 5), each entry splat in an f64x2, and
 * G g of two outputs (as many f64x2).
 */
export function pack_winograd_scratch_bytes(): i32 {
  return 2 * 6 * 5 * 16;
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
 * ones lane by lane). Pairs of finite taps (tap step 1 or -1) take a fast
 * path per transform (`fast_f2x3`, `fast_f4x3`, `fast_f2x5`) that leaves out
 * the products with G's zeros, multiplies by -1 and powers of 2 exactly and
 * shares the products of rows that differ in sign: the same f64 sums, so the
 * same bits, with about half the operations. Tap t (row-major in the kernel)
 * of output o, input ci is src[base + o * os + ci * cs + t * ts].
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

  // The fast paths' constants (what G holds there; each path reads its own): G[0][0] (1/4),
  // G[1][0] (1/2 for n = 4), G[2][1] (fl(1/6)), G[3][0..r) (2^t fl(1/24)).
  const q = v128.load(g), half = v128.load(g + (<usize>r << 4));
  const sixth = v128.load(g + (<usize>(2 * r + 1) << 4));
  const k0c = v128.load(g + (<usize>(3 * r) << 4)), k1c = v128.load(g + (<usize>(3 * r + 1) << 4));
  const k2c = v128.load(g + (<usize>(3 * r + 2) << 4));
  const k3c = v128.load(g + (<usize>(3 * r + 3) << 4)), k4c = v128.load(g + (<usize>(3 * r + 4) << 4));

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
        const mb = <usize>size << 2;
        if (two && (ts == 1 || ts == -1)) {
          if (r == 5 ? fast_f2x5(src, k0, os, ts, row, mb, q, sixth, k0c, k1c, k2c, k3c, k4c)
            : n == 6 ? fast_f4x3(src, k0, os, ts, row, mb, q, sixth, k0c, k1c, k2c)
            : fast_f2x3(src, k0, os, ts, row, mb, half)) continue;
        }
        winograd_pair(src, k0, os, ts, two, g, g + 6 * 5 * 16, n, r, row, mb);
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

// U = G g G^T of two outputs' r x r kernels, the reference's way (packWinograd in
// src/backend/pack.ts, lane by lane): G g to `gg` (n x r, f64x2), sum = 0; sum += G[i][t]
// g[t][col] for t; then U[i][j] = (sum = 0; sum += gg[i][t] G[j][t] for t), rounded to f32, to
// `row` + (n i + j) matrices (`mb` bytes apart). What the fast paths below skip (0 Inf is NaN)
// or do not cover (an odd output's pair, other tap steps).
function winograd_pair(
  src: usize, k0: i32, os: i32, ts: i32, two: bool, g: usize, gg: usize, n: i32, r: i32,
  row: usize, mb: usize,
): void {
  for (let i = 0; i < n; i++) {
    for (let col = 0; col < r; col++) {
      let sum = f64x2.splat(0);
      for (let t = 0; t < r; t++) {
        sum = f64x2.add(sum, f64x2.mul(v128.load(g + (<usize>(i * r + t) << 4)), tap(src, k0, os, ts, t * r + col, two)));
      }
      v128.store(gg + (<usize>(i * r + col) << 4), sum);
    }
  }
  let out = row;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++, out += mb) {
      let sum = f64x2.splat(0);
      for (let t = 0; t < r; t++) {
        sum = f64x2.add(sum, f64x2.mul(v128.load(gg + (<usize>(i * r + t) << 4)), v128.load(g + (<usize>(j * r + t) << 4))));
      }
      v128.store64_lane(out, f32x4.demote_f64x2_zero(sum), 0);
    }
  }
}

// The fast path for finite taps: the same f64 values as winograd_pair, with fewer operations, in
// locals (V8 checks the bounds of each memory access here: with the taps and G g in the scratch and
// the constants loaded at each use, the same arithmetic took 1.2-1.7x the time).
// With every tap finite, each f64 here is 0 or at least 2^-300 in magnitude and below 2^135 (f32
// inputs, sums of at most 25 terms, constants between 2^-5 and 1), so no operation overflows or
// goes subnormal, and:
// - a product with G's 0 or -0 is +-0, and adding +-0 to a sum that starts at +0 leaves it as it
//   was (the sum is never -0: +0 + -0 is +0, and x + y is -0 only when both are), so those terms
//   go, and so does the leading 0 + p where p cannot be -0;
// - a product with -1 is a negation, and one with 0.5, 0.25 or 2^t / 24 (= 2^t fl(1/24)) an
//   exact scaling (0.5 a + 0.5 b rounds to 0.5 (a + b)); fl(-1/6) x is -(fl(1/6) x), so G's rows
//   c [1, +-1, ...] share the products fl(1/6) x_t, and its rows k [1, +-2, 4, ...] those of
//   2^t k x_t (shared by value numbering: the row functions below repeat them); a + (-b) is a - b;
// so each entry is the old sum, term by term in the old order. The taps are made +0 where -0 (x +
// 0; the rows whose first term is 0 + x0 or 0 + 1 x_last need it), and the results are never -0
// (the old sums' are not), so G g feeds the second stage as it is. A tap that is Inf or NaN makes
// row 1 of G g (whose coefficients are all nonzero) non-finite: the pair then goes the old way
// (0 Inf is NaN), before anything is written.

// 4 taps of one output from one v128 load at float `at`, -0 made +0, in tap order (lanes reversed
// when the taps run backwards).
@inline function quad(src: usize, at: i32, rev: bool): v128 {
  const v = f32x4.add(v128.load(src + (<usize>at << 2)), f32x4.splat(0));
  return rev ? v128.shuffle<f32>(v, v, 3, 2, 1, 0) : v;
}

// Tap 4 q + l of outputs o and o + 1 in f64 from their quads a and b.
@inline function lane0(a: v128, b: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(a, b, 0, 4, 0, 4));
}
@inline function lane1(a: v128, b: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(a, b, 1, 5, 1, 5));
}
@inline function lane2(a: v128, b: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(a, b, 2, 6, 2, 6));
}
@inline function lane3(a: v128, b: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(a, b, 3, 7, 3, 7));
}

// The tap at float `at` of outputs o and o + 1 (`os` floats on) in f64, -0 made +0.
@inline function single(src: usize, at: i32, os: i32): v128 {
  const w0 = <f64>(load<f32>(src + (<usize>at << 2)) + 0);
  return f64x2.replace_lane(f64x2.splat(w0), 1, <f64>(load<f32>(src + (<usize>(at + os) << 2)) + 0));
}

// Float offset of the quad of taps 4 q..4 q + 3 from tap 0's (tap step 1 or -1).
@inline function quad_at(q: i32, ts: i32): i32 {
  return ts > 0 ? 4 * q : -4 * q - 3;
}

@inline function put(at: usize, y: v128): void {
  v128.store64_lane(at, f32x4.demote_f64x2_zero(y), 0);
}

@inline function finite(s: v128): bool {
  return i64x2.all_true(f64x2.eq(f64x2.sub(s, s), f64x2.splat(0)));
}

// Rows of F(4x4, 3x3)'s G: [1/4, 0, 0], c [1, 1, 1], c [1, -1, 1], k [1, 2, 4], k [1, -2, 4],
// [0, 0, 1] (c = fl(-1/6), k = fl(1/24)) times x; `c` is fl(1/6), k0..k2 G[3][0..2].
@inline function a1(x0: v128, x1: v128, x2: v128, c: v128): v128 {
  const m = f64x2.sub(f64x2.splat(0), f64x2.mul(x0, c));
  return f64x2.sub(f64x2.sub(m, f64x2.mul(x1, c)), f64x2.mul(x2, c));
}
@inline function a2(x0: v128, x1: v128, x2: v128, c: v128): v128 {
  const m = f64x2.sub(f64x2.splat(0), f64x2.mul(x0, c));
  return f64x2.sub(f64x2.add(m, f64x2.mul(x1, c)), f64x2.mul(x2, c));
}
@inline function a3(x0: v128, x1: v128, x2: v128, k0: v128, k1: v128, k2: v128): v128 {
  return f64x2.add(f64x2.add(f64x2.mul(x0, k0), f64x2.mul(x1, k1)), f64x2.mul(x2, k2));
}
@inline function a4(x0: v128, x1: v128, x2: v128, k0: v128, k1: v128, k2: v128): v128 {
  return f64x2.add(f64x2.sub(f64x2.mul(x0, k0), f64x2.mul(x1, k1)), f64x2.mul(x2, k2));
}

// U[i][0..6) of F(4x4, 3x3) from row i of G g, rounded to f32, `mb` bytes apart.
@inline function row_f4x3(
  h0: v128, h1: v128, h2: v128, out: usize, mb: usize,
  q: v128, c: v128, k0: v128, k1: v128, k2: v128,
): void {
  put(out, f64x2.mul(h0, q));
  put(out + mb, a1(h0, h1, h2, c));
  put(out + 2 * mb, a2(h0, h1, h2, c));
  put(out + 3 * mb, a3(h0, h1, h2, k0, k1, k2));
  put(out + 4 * mb, a4(h0, h1, h2, k0, k1, k2));
  put(out + 5 * mb, h2);
}

// U = G g G^T of outputs o, o + 1 by F(4x4, 3x3), as winograd_pair_r3 writes it; false (nothing
// written) when a tap is not finite.
@inline function fast_f4x3(
  src: usize, k0: i32, os: i32, ts: i32, row: usize, mb: usize,
  q: v128, c: v128, g0: v128, g1: v128, g2: v128,
): bool {
  const rev = ts < 0;
  const a = quad(src, k0 + quad_at(0, ts), rev), b = quad(src, k0 + os + quad_at(0, ts), rev);
  const a_ = quad(src, k0 + quad_at(1, ts), rev), b_ = quad(src, k0 + os + quad_at(1, ts), rev);
  const w0 = lane0(a, b), w1 = lane1(a, b), w2 = lane2(a, b), w3 = lane3(a, b);
  const w4 = lane0(a_, b_), w5 = lane1(a_, b_), w6 = lane2(a_, b_), w7 = lane3(a_, b_);
  const w8 = single(src, k0 + 8 * ts, os);
  const h10 = a1(w0, w3, w6, c), h11 = a1(w1, w4, w7, c), h12 = a1(w2, w5, w8, c);
  if (!finite(f64x2.add(f64x2.add(h10, h11), h12))) return false;
  row_f4x3(f64x2.mul(w0, q), f64x2.mul(w1, q), f64x2.mul(w2, q), row, mb, q, c, g0, g1, g2);
  row_f4x3(h10, h11, h12, row + 6 * mb, mb, q, c, g0, g1, g2);
  row_f4x3(a2(w0, w3, w6, c), a2(w1, w4, w7, c), a2(w2, w5, w8, c), row + 12 * mb, mb, q, c, g0, g1, g2);
  row_f4x3(
    a3(w0, w3, w6, g0, g1, g2), a3(w1, w4, w7, g0, g1, g2), a3(w2, w5, w8, g0, g1, g2),
    row + 18 * mb, mb, q, c, g0, g1, g2,
  );
  row_f4x3(
    a4(w0, w3, w6, g0, g1, g2), a4(w1, w4, w7, g0, g1, g2), a4(w2, w5, w8, g0, g1, g2),
    row + 24 * mb, mb, q, c, g0, g1, g2,
  );
  row_f4x3(w6, w7, w8, row + 30 * mb, mb, q, c, g0, g1, g2);
  return true;
}

// Rows of F(2x2, 3x3)'s G: [-1, -0, -0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1] times x.
// `half` is G[1][0] (0.5).
@inline function b1(x0: v128, x1: v128, x2: v128, half: v128): v128 {
  return f64x2.mul(f64x2.add(f64x2.add(x0, x1), x2), half);
}
@inline function b2(x0: v128, x1: v128, x2: v128, half: v128): v128 {
  return f64x2.mul(f64x2.add(f64x2.sub(x0, x1), x2), half);
}
@inline function neg0(x: v128): v128 {
  return f64x2.sub(f64x2.splat(0), x);
}

@inline function row_f2x3(h0: v128, h1: v128, h2: v128, out: usize, mb: usize, half: v128): void {
  put(out, neg0(h0));
  put(out + mb, b1(h0, h1, h2, half));
  put(out + 2 * mb, b2(h0, h1, h2, half));
  put(out + 3 * mb, h2);
}

// The same by F(2x2, 3x3).
@inline function fast_f2x3(
  src: usize, k0: i32, os: i32, ts: i32, row: usize, mb: usize, half: v128,
): bool {
  const rev = ts < 0;
  const a = quad(src, k0 + quad_at(0, ts), rev), b = quad(src, k0 + os + quad_at(0, ts), rev);
  const a_ = quad(src, k0 + quad_at(1, ts), rev), b_ = quad(src, k0 + os + quad_at(1, ts), rev);
  const w0 = lane0(a, b), w1 = lane1(a, b), w2 = lane2(a, b), w3 = lane3(a, b);
  const w4 = lane0(a_, b_), w5 = lane1(a_, b_), w6 = lane2(a_, b_), w7 = lane3(a_, b_);
  const w8 = single(src, k0 + 8 * ts, os);
  const h10 = b1(w0, w3, w6, half), h11 = b1(w1, w4, w7, half), h12 = b1(w2, w5, w8, half);
  if (!finite(f64x2.add(f64x2.add(h10, h11), h12))) return false;
  row_f2x3(neg0(w0), neg0(w1), neg0(w2), row, mb, half);
  row_f2x3(h10, h11, h12, row + 4 * mb, mb, half);
  row_f2x3(b2(w0, w3, w6, half), b2(w1, w4, w7, half), b2(w2, w5, w8, half), row + 8 * mb, mb, half);
  row_f2x3(w6, w7, w8, row + 12 * mb, mb, half);
  return true;
}

// Rows of F(2x2, 5x5)'s G: [1/4, 0, 0, 0, 0], c [1, 1, 1, 1, 1], c [1, -1, 1, -1, 1],
// k [1, 2, 4, 8, 16], k [1, -2, 4, -8, 16], [0, 0, 0, 0, 1] times x.
@inline function c1(x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, c: v128): v128 {
  const m = f64x2.sub(f64x2.splat(0), f64x2.mul(x0, c));
  const s = f64x2.sub(f64x2.sub(m, f64x2.mul(x1, c)), f64x2.mul(x2, c));
  return f64x2.sub(f64x2.sub(s, f64x2.mul(x3, c)), f64x2.mul(x4, c));
}
@inline function c2(x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, c: v128): v128 {
  const m = f64x2.sub(f64x2.splat(0), f64x2.mul(x0, c));
  const s = f64x2.sub(f64x2.add(m, f64x2.mul(x1, c)), f64x2.mul(x2, c));
  return f64x2.sub(f64x2.add(s, f64x2.mul(x3, c)), f64x2.mul(x4, c));
}
@inline function c3(
  x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, k0: v128, k1: v128, k2: v128, k3: v128, k4: v128,
): v128 {
  const s = f64x2.add(f64x2.add(f64x2.mul(x0, k0), f64x2.mul(x1, k1)), f64x2.mul(x2, k2));
  return f64x2.add(f64x2.add(s, f64x2.mul(x3, k3)), f64x2.mul(x4, k4));
}
@inline function c4(
  x0: v128, x1: v128, x2: v128, x3: v128, x4: v128, k0: v128, k1: v128, k2: v128, k3: v128, k4: v128,
): v128 {
  const s = f64x2.add(f64x2.sub(f64x2.mul(x0, k0), f64x2.mul(x1, k1)), f64x2.mul(x2, k2));
  return f64x2.add(f64x2.sub(s, f64x2.mul(x3, k3)), f64x2.mul(x4, k4));
}

@inline function row_f2x5(
  h0: v128, h1: v128, h2: v128, h3: v128, h4: v128, out: usize, mb: usize,
  q: v128, c: v128, k0: v128, k1: v128, k2: v128, k3: v128, k4: v128,
): void {
  put(out, f64x2.mul(h0, q));
  put(out + mb, c1(h0, h1, h2, h3, h4, c));
  put(out + 2 * mb, c2(h0, h1, h2, h3, h4, c));
  put(out + 3 * mb, c3(h0, h1, h2, h3, h4, k0, k1, k2, k3, k4));
  put(out + 4 * mb, c4(h0, h1, h2, h3, h4, k0, k1, k2, k3, k4));
  put(out + 5 * mb, h4);
}

// The same by F(2x2, 5x5) for a 5 x 5 kernel.
function fast_f2x5(
  src: usize, k0: i32, os: i32, ts: i32, row: usize, mb: usize,
  q: v128, c: v128, g0: v128, g1: v128, g2: v128, g3: v128, g4: v128,
): bool {
  const rev = ts < 0;
  let a = quad(src, k0 + quad_at(0, ts), rev), b = quad(src, k0 + os + quad_at(0, ts), rev);
  const w0 = lane0(a, b), w1 = lane1(a, b), w2 = lane2(a, b), w3 = lane3(a, b);
  a = quad(src, k0 + quad_at(1, ts), rev); b = quad(src, k0 + os + quad_at(1, ts), rev);
  const w4 = lane0(a, b), w5 = lane1(a, b), w6 = lane2(a, b), w7 = lane3(a, b);
  a = quad(src, k0 + quad_at(2, ts), rev); b = quad(src, k0 + os + quad_at(2, ts), rev);
  const w8 = lane0(a, b), w9 = lane1(a, b), w10 = lane2(a, b), w11 = lane3(a, b);
  a = quad(src, k0 + quad_at(3, ts), rev); b = quad(src, k0 + os + quad_at(3, ts), rev);
  const w12 = lane0(a, b), w13 = lane1(a, b), w14 = lane2(a, b), w15 = lane3(a, b);
  a = quad(src, k0 + quad_at(4, ts), rev); b = quad(src, k0 + os + quad_at(4, ts), rev);
  const w16 = lane0(a, b), w17 = lane1(a, b), w18 = lane2(a, b), w19 = lane3(a, b);
  a = quad(src, k0 + quad_at(5, ts), rev); b = quad(src, k0 + os + quad_at(5, ts), rev);
  const w20 = lane0(a, b), w21 = lane1(a, b), w22 = lane2(a, b), w23 = lane3(a, b);
  const w24 = single(src, k0 + 24 * ts, os);
  const h10 = c1(w0, w5, w10, w15, w20, c), h11 = c1(w1, w6, w11, w16, w21, c);
  const h12 = c1(w2, w7, w12, w17, w22, c), h13 = c1(w3, w8, w13, w18, w23, c);
  const h14 = c1(w4, w9, w14, w19, w24, c);
  if (!finite(f64x2.add(f64x2.add(f64x2.add(f64x2.add(h10, h11), h12), h13), h14))) return false;
  row_f2x5(
    f64x2.mul(w0, q), f64x2.mul(w1, q), f64x2.mul(w2, q), f64x2.mul(w3, q), f64x2.mul(w4, q),
    row, mb, q, c, g0, g1, g2, g3, g4,
  );
  row_f2x5(h10, h11, h12, h13, h14, row + 6 * mb, mb, q, c, g0, g1, g2, g3, g4);
  row_f2x5(
    c2(w0, w5, w10, w15, w20, c), c2(w1, w6, w11, w16, w21, c), c2(w2, w7, w12, w17, w22, c),
    c2(w3, w8, w13, w18, w23, c), c2(w4, w9, w14, w19, w24, c),
    row + 12 * mb, mb, q, c, g0, g1, g2, g3, g4,
  );
  row_f2x5(
    c3(w0, w5, w10, w15, w20, g0, g1, g2, g3, g4), c3(w1, w6, w11, w16, w21, g0, g1, g2, g3, g4),
    c3(w2, w7, w12, w17, w22, g0, g1, g2, g3, g4), c3(w3, w8, w13, w18, w23, g0, g1, g2, g3, g4),
    c3(w4, w9, w14, w19, w24, g0, g1, g2, g3, g4),
    row + 18 * mb, mb, q, c, g0, g1, g2, g3, g4,
  );
  row_f2x5(
    c4(w0, w5, w10, w15, w20, g0, g1, g2, g3, g4), c4(w1, w6, w11, w16, w21, g0, g1, g2, g3, g4),
    c4(w2, w7, w12, w17, w22, g0, g1, g2, g3, g4), c4(w3, w8, w13, w18, w23, g0, g1, g2, g3, g4),
    c4(w4, w9, w14, w19, w24, g0, g1, g2, g3, g4),
    row + 24 * mb, mb, q, c, g0, g1, g2, g3, g4,
  );
  row_f2x5(w20, w21, w22, w23, w24, row + 30 * mb, mb, q, c, g0, g1, g2, g3, g4);
  return true;
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
