// The small element-wise operations.

import { madd, relu4 } from "./simd";

/** x[i] = max(x[i], 0) for i in [0, n), in place. */
export function relu(x: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const p = x + (<usize>i << 2);
    v128.store(p, relu4(v128.load(p)));
  }
  for (; i < n; i++) {
    const p = x + (<usize>i << 2);
    store<f32>(p, max<f32>(load<f32>(p), 0));
  }
}

/**
 * Inverted dropout in place: each of the n values is zeroed with probability
 * p and otherwise scaled by 1 / (1 - p). The mask comes from xorshift32
 * seeded with `seed` (non-zero), so a seed gives the same mask every time.
 */
export function dropout(x: usize, n: i32, p: f32, seed: u32): void {
  let s = seed | 1;
  const keep = <f32>1 / (<f32>1 - p);
  const threshold = <u32>(<f64>p * 4294967296.0);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    const q = x + (<usize>i << 2);
    store<f32>(q, s < threshold ? 0 : load<f32>(q) * keep);
  }
}

// e^x for x <= 0 in f64: x = k ln2 + r, |r| <= ln2 / 2, degree-11 Taylor
// polynomial for e^r (error < 2e-16), scaled by 2^k. No tables, no data.
@inline function exp_nonpositive(x: f64): f64 {
  if (x < -745) return 0;
  const k = Math.floor(x * 1.4426950408889634 + 0.5);
  const r = x - k * 0.6931471805599453;
  let t: f64 = 1.0 / 39916800.0;
  t = madd_f64(t, r, 1.0 / 3628800.0);
  t = madd_f64(t, r, 1.0 / 362880.0);
  t = madd_f64(t, r, 1.0 / 40320.0);
  t = madd_f64(t, r, 1.0 / 5040.0);
  t = madd_f64(t, r, 1.0 / 720.0);
  t = madd_f64(t, r, 1.0 / 120.0);
  t = madd_f64(t, r, 1.0 / 24.0);
  t = madd_f64(t, r, 1.0 / 6.0);
  t = madd_f64(t, r, 0.5);
  t = madd_f64(t, r, 1.0);
  t = madd_f64(t, r, 1.0);
  // 2^k for k in [-1075, 0] as two factors to stay in the normal range.
  const k1 = <i64>k >> 1, k2 = <i64>k - k1;
  return t * reinterpret<f64>((k1 + 1023) << 52) * reinterpret<f64>((k2 + 1023) << 52);
}

@inline function madd_f64(t: f64, r: f64, c: f64): f64 {
  return t * r + c;
}

/**
 * Softmax over each of `rows` rows of `cols` values, in place, computed in
 * f64 and max-shifted like PyTorch. A row holding NaN becomes all NaN.
 */
export function softmax(x: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    const row = x + <usize>r * (<usize>cols << 2);
    let m = -Infinity;
    for (let i = 0; i < cols; i++) m = max<f64>(m, <f64>load<f32>(row + (<usize>i << 2)));
    let sum: f64 = 0;
    for (let i = 0; i < cols; i++) {
      const p = row + (<usize>i << 2);
      const v = <f64>load<f32>(p);
      const e = v == m ? 1.0 : exp_nonpositive(v - m);
      store<f32>(p, <f32>e);
      sum += e;
    }
    const inv = 1.0 / sum;
    for (let i = 0; i < cols; i++) {
      const p = row + (<usize>i << 2);
      store<f32>(p, <f32>(<f64>load<f32>(p) * inv));
    }
  }
}

/**
 * The peak probe: the GEMM micro-kernel's instruction mix (6 broadcasts,
 * 2 vector loads, 12 independent multiply-adds per step) on 8 floats at `p`
 * that stay in L1, `iters` steps. Returns a lane sum so the work cannot be
 * optimised away; flops = iters * 12 * 4 * 2.
 */
export function fma_peak(iters: i32, p: usize): f32 {
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  let c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
  for (let i = 0; i < iters; i++) {
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    let a = v128.load32_splat(p);
    c0 = madd(a, b0, c0); c1 = madd(a, b1, c1);
    a = v128.load32_splat(p, 4);
    c2 = madd(a, b0, c2); c3 = madd(a, b1, c3);
    a = v128.load32_splat(p, 8);
    c4 = madd(a, b0, c4); c5 = madd(a, b1, c5);
    a = v128.load32_splat(p, 12);
    c6 = madd(a, b0, c6); c7 = madd(a, b1, c7);
    a = v128.load32_splat(p, 16);
    c8 = madd(a, b0, c8); c9 = madd(a, b1, c9);
    a = v128.load32_splat(p, 20);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
  }
  const s = f32x4.add(
    f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)),
    f32x4.add(f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)), f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))),
  );
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}

/**
 * The pure multiply-add rate: 12 independent chains on registers, no loads,
 * `iters` steps (flops = iters * 12 * 4 * 2), operands read once from the 8
 * floats at `p`. The ceiling `fma_peak` and the kernels are measured against;
 * returns a lane sum so nothing is optimised away.
 */
export function fma_pure(iters: i32, p: usize): f32 {
  // From memory, not constants: V8 would rebuild a constant vector before every use.
  const a = v128.load(p), b = v128.load(p, 16);
  // Distinct starts, or the optimiser merges the twelve identical chains into one.
  let c0 = f32x4.splat(0), c1 = f32x4.splat(1), c2 = f32x4.splat(2), c3 = f32x4.splat(3);
  let c4 = f32x4.splat(4), c5 = f32x4.splat(5), c6 = f32x4.splat(6), c7 = f32x4.splat(7);
  let c8 = f32x4.splat(8), c9 = f32x4.splat(9), c10 = f32x4.splat(10), c11 = f32x4.splat(11);
  for (let i = 0; i < iters; i++) {
    c0 = madd(a, b, c0); c1 = madd(a, b, c1); c2 = madd(a, b, c2); c3 = madd(a, b, c3);
    c4 = madd(a, b, c4); c5 = madd(a, b, c5); c6 = madd(a, b, c6); c7 = madd(a, b, c7);
    c8 = madd(a, b, c8); c9 = madd(a, b, c9); c10 = madd(a, b, c10); c11 = madd(a, b, c11);
  }
  const s = f32x4.add(
    f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)),
    f32x4.add(f32x4.add(f32x4.add(c4, c5), f32x4.add(c6, c7)), f32x4.add(f32x4.add(c8, c9), f32x4.add(c10, c11))),
  );
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
}

/**
 * ReLU's backward on its output y, in place in dy, for pixels [r0, r1) and
 * channels [0, c): dy = y <= 0 ? 0 : dy (PyTorch's threshold_backward: a NaN
 * output passes its gradient, as torch 1.13 does). Strides in floats.
 */
export function relu_backward(dy: usize, dystride: i32, y: usize, ystride: i32, c: i32, r0: i32, r1: i32): void {
  const zero = f32x4.splat(0);
  const c4 = c & ~3;
  for (let r = r0; r < r1; r++) {
    const g = dy + <usize>r * (<usize>dystride << 2), v = y + <usize>r * (<usize>ystride << 2);
    let i = 0;
    for (; i < c4; i += 4) {
      const o = <usize>i << 2;
      v128.store(g + o, v128.andnot(v128.load(g + o), f32x4.le(v128.load(v + o), zero)));
    }
    for (; i < c; i++) {
      const o = <usize>i << 2;
      if (load<f32>(v + o) <= 0) store<f32>(g + o, 0);
    }
  }
}
