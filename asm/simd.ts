// Shared SIMD helpers. `madd` is a fused multiply-add on relaxed-SIMD builds
// and a multiply then add on plain-SIMD builds: one source, two binaries.

/** c + a * b, lane-wise. */
@inline export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** max(v, 0) lane-wise; NaN stays NaN as in PyTorch's ReLU. */
@inline export function relu4(v: v128): v128 {
  return f32x4.max(v, f32x4.splat(0));
}

/** Stores the first `n` (0..8) lanes of lo:hi at `p`. */
@inline export function store_n(p: usize, lo: v128, hi: v128, n: i32): void {
  if (n == 8) {
    v128.store(p, lo);
    v128.store(p, hi, 16);
    return;
  }
  let v = lo;
  if (n >= 4) {
    v128.store(p, lo);
    v = hi;
    p += 16;
    n -= 4;
  }
  if (n > 0) store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** Adds lo:hi to the first `n` (0..8) floats at `p`: p[i] = p[i] + lane i. */
@inline export function add_n(p: usize, lo: v128, hi: v128, n: i32): void {
  if (n == 8) {
    v128.store(p, f32x4.add(v128.load(p), lo));
    v128.store(p, f32x4.add(v128.load(p, 16), hi), 16);
    return;
  }
  let v = lo;
  if (n >= 4) {
    v128.store(p, f32x4.add(v128.load(p), lo));
    v = hi;
    p += 16;
    n -= 4;
  }
  if (n > 0) store<f32>(p, load<f32>(p) + f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, load<f32>(p, 4) + f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, load<f32>(p, 8) + f32x4.extract_lane(v, 2), 8);
}

/** The first `n` (0..8) floats at `p` as lo:hi, zeros past them; reads nothing past p + 4n. */
@inline export function load_lo_n(p: usize, n: i32): v128 {
  if (n >= 4) return v128.load(p);
  let v = f32x4.splat(0);
  if (n > 0) v = f32x4.replace_lane(v, 0, load<f32>(p));
  if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(p, 4));
  if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(p, 8));
  return v;
}

/** The upper half (floats 4..8) of `load_lo_n`'s eight: zeros past n. */
@inline export function load_hi_n(p: usize, n: i32): v128 {
  if (n >= 8) return v128.load(p, 16);
  return n > 4 ? load_lo_n(p + 16, n - 4) : f32x4.splat(0);
}

/** Copies n floats from src to dst (no overlap), 4 at a time: cheaper than memory.copy for short rows. */
@inline export function copy_floats(dst: usize, src: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), v128.load(src + (<usize>i << 2)));
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), load<f32>(src + (<usize>i << 2)));
}

/** Sets n floats at dst to zero, 4 at a time. */
@inline export function zero_floats(dst: usize, n: i32): void {
  const z = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) v128.store(dst + (<usize>i << 2), z);
  for (; i < n; i++) store<f32>(dst + (<usize>i << 2), 0);
}
