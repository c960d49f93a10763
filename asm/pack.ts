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
 */
export function pack_gemm(
  src: usize, base: i32, k: i32, n: i32,
  rc: i32, ra: i32, rb: i32,
  cc: i32, ca: i32, cb: i32,
  bias: usize, dst: usize, p0: i32, p1: i32,
): void {
  for (let p = p0; p < p1; p++) {
    const panel = dst + (<usize>(p * (k + 1) * NR) << 2);
    const j0 = p * NR;
    const cols = min<i32>(NR, n - j0);
    // Bias row.
    for (let j = 0; j < NR; j++) {
      store<f32>(panel + (<usize>j << 2), j < cols && bias != 0 ? load<f32>(bias + (<usize>(j0 + j) << 2)) : 0);
    }
    for (let j = 0; j < NR; j++) {
      let at = panel + (<usize>(NR + j) << 2);
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

/** Bytes of scratch `pack_winograd` needs: G in f64, then G g and g for two outputs in f64x2. */
export function pack_winograd_scratch_bytes(): i32 {
  return 6 * 5 * 8 + 6 * 5 * 16 + 5 * 5 * 16;
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
  const g = scratch, gg = scratch + 6 * 5 * 8, wv = gg + 6 * 5 * 16;
  for (let j = 0; j < n - 1; j++) {
    const a = point(j);
    let norm: f64 = 1;
    for (let l = 0; l < n - 1; l++) if (l != j) norm *= a - point(l);
    let power: f64 = 1;
    for (let t = 0; t < r; t++) {
      store<f64>(g + (<usize>(j * r + t) << 3), power / norm);
      power *= a;
    }
  }
  for (let t = 0; t < r; t++) store<f64>(g + (<usize>((n - 1) * r + t) << 3), t == r - 1 ? 1.0 : 0.0);

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
        for (let t = 0; t < taps; t++) {
          const w0 = <f64>load<f32>(src + (<usize>(k0 + t * ts) << 2));
          const w1 = two ? <f64>load<f32>(src + (<usize>(k0 + os + t * ts) << 2)) : 0.0;
          v128.store(wv + (<usize>t << 4), f64x2.replace_lane(f64x2.splat(w0), 1, w1));
        }
        // gg = G g (n x r).
        for (let i = 0; i < n; i++) {
          for (let col = 0; col < r; col++) {
            let sum = f64x2.splat(0);
            for (let t = 0; t < r; t++) {
              const gi = v128.load64_splat(g + (<usize>(i * r + t) << 3));
              sum = f64x2.add(sum, f64x2.mul(gi, v128.load(wv + (<usize>(t * r + col) << 4))));
            }
            v128.store(gg + (<usize>(i * r + col) << 4), sum);
          }
        }
        // U = gg G^T (n x n), U[i][j] to matrix n i + j, both outputs in one 8-byte store.
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let sum = f64x2.splat(0);
            for (let t = 0; t < r; t++) {
              const gj = v128.load64_splat(g + (<usize>(j * r + t) << 3));
              sum = f64x2.add(sum, f64x2.mul(v128.load(gg + (<usize>(i * r + t) << 4)), gj));
            }
            v128.store64_lane(row + (<usize>((i * n + j) * size) << 2), f32x4.demote_f64x2_zero(sum), 0);
          }
        }
      }
    }
  }
}
