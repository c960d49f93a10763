// Optimizer updates in Wasm: PyTorch 1.13's SGD and Adam/AdamW rules over
// elements [e0, e1) of one parameter, with its state (momentum buffer,
// moments) kept in Wasm memory, bit for bit what src/train/sgd.ts and
// adam.ts compute in TypeScript:
// - an operation that TypeScript rounds alone, Math.fround(a op b) with a, b
//   floats (op one of + - * / or sqrt), is the f32 operation here (f64
//   rounded to f32 is the correctly rounded f32 result for those);
// - Math.fround(a + b * c), whose product TypeScript keeps in f64 (exact for
//   two floats) and rounds once after the sum, as PyTorch's fused
//   `add_(x, alpha)` rounds once, is computed in f64 lanes here (`fma64`).
// Elements are independent, so any split across threads gives the same bits.
//
// The parameter is read from x and its update written to xo (a second copy:
// the model keeps the previous values readable while a step runs; xo == x
// updates in place), both and its state in PyTorch's layout. The gradient may be
// in the backend's row order: element e = o * k + s reads the gradient at
//   o * k + (s % gc) * ga + s / gc
// (gc 0: at e, contiguous), which undoes a convolution's (kh, kw, c) rows or
// a linear layer's NHWC flattening without a converted copy of the whole
// gradient: each row is transposed into the thread's scratch (k floats, in
// L1), then updated as a contiguous one.

/** Flag bits of `adam_update`. */
const DECOUPLED: i32 = 1;
const DECAY: i32 = 2;
/** Flag bits of `sgd_update` (and DECAY). */
const MOMENTUM: i32 = 4;
const FIRST: i32 = 8;
const NESTEROV: i32 = 16;

/** Math.fround(a + b * c) lane-wise, the sum and product in f64. */
@inline function fma64(a: v128, b: v128, c: v128): v128 {
  const lo = f64x2.add(
    f64x2.promote_low_f32x4(a),
    f64x2.mul(f64x2.promote_low_f32x4(b), f64x2.promote_low_f32x4(c)),
  );
  const ah = v128.shuffle<f32>(a, a, 2, 3, 2, 3);
  const bh = v128.shuffle<f32>(b, b, 2, 3, 2, 3);
  const ch = v128.shuffle<f32>(c, c, 2, 3, 2, 3);
  const hi = f64x2.add(
    f64x2.promote_low_f32x4(ah),
    f64x2.mul(f64x2.promote_low_f32x4(bh), f64x2.promote_low_f32x4(ch)),
  );
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** Math.fround(a + b * c), the sum and product in f64. */
@inline function fma1(a: f32, b: f32, c: f32): f32 {
  return <f32>(<f64>a + <f64>b * <f64>c);
}

/**
 * Row `row` of a gathered gradient in PyTorch's element order, to `t` (k = gc * ga
 * floats): element q * gc + c of the row is the gradient's float c * ga + q,
 * read 4 at a time along q and stored a float at a time, gc floats apart.
 */
function transpose_row(g: usize, row: i32, gc: i32, ga: i32, t: usize): void {
  const d = <usize>gc << 2;
  for (let c = 0; c < gc; c++) {
    const src = g + (<usize>(row + c * ga) << 2);
    let dst = t + (<usize>c << 2);
    let q = 0;
    for (; q + 4 <= ga; q += 4, dst += 4 * d) {
      const w = v128.load(src + (<usize>q << 2));
      v128.store32_lane(dst, w, 0);
      v128.store32_lane(dst + d, w, 1);
      v128.store32_lane(dst + 2 * d, w, 2);
      v128.store32_lane(dst + 3 * d, w, 3);
    }
    for (; q < ga; q++, dst += d) store<f32>(dst, load<f32>(src + (<usize>q << 2)));
  }
}

// ---- Adam / AdamW ----------------------------------------------------------

@inline function adam4(
  px: usize, pxo: usize, gi: v128, pm: usize, pv: usize, flags: i32,
  b1: v128, b2: v128, a1: v128, a2: v128, wd: v128, eps: v128,
  stepSize: v128, bc2: v128, shrink: v128,
): void {
  let x = v128.load(px);
  let g = gi;
  if (flags & DECOUPLED) {
    if (flags & DECAY) x = f32x4.mul(x, shrink);
  } else if (flags & DECAY) {
    g = fma64(g, wd, x);
  }
  const m = fma64(f32x4.mul(v128.load(pm), b1), a1, g);
  const v = fma64(f32x4.mul(v128.load(pv), b2), f32x4.mul(a2, g), g);
  v128.store(pm, m);
  v128.store(pv, v);
  const denom = f32x4.add(f32x4.div(f32x4.sqrt(v), bc2), eps);
  v128.store(pxo, fma64(x, stepSize, f32x4.div(m, denom)));
}

@inline function adam1(
  px: usize, pxo: usize, gi: f32, pm: usize, pv: usize, flags: i32,
  b1: f32, b2: f32, a1: f32, a2: f32, wd: f32, eps: f32,
  stepSize: f32, bc2: f32, shrink: f32,
): void {
  let x = load<f32>(px);
  let g = gi;
  if (flags & DECOUPLED) {
    if (flags & DECAY) x = x * shrink;
  } else if (flags & DECAY) {
    g = fma1(g, wd, x);
  }
  const m = fma1(load<f32>(pm) * b1, a1, g);
  const v = fma1(load<f32>(pv) * b2, a2 * g, g);
  store<f32>(pm, m);
  store<f32>(pv, v);
  const denom = Mathf.sqrt(v) / bc2 + eps;
  store<f32>(pxo, fma1(x, stepSize, m / denom));
}

/**
 * PyTorch 1.13's Adam (flags without DECOUPLED) or AdamW step on elements
 * [e0, e1) of x (f32), written to xo, with its gradient g (gathered as above) and
 * moments m, v (f32, in place, x's layout). The scalars are adam.ts's f32
 * constants, read from the 10 floats at `rule` (the caller writes them there
 * before each step, so that one plan serves every step): b1, b2, a1 = 1 -
 * beta1, a2 = 1 - beta2, wd, eps, stepSize = -lr / (1 - beta1^t), bc2 =
 * sqrt(1 - beta2^t), shrink = 1 - lr * wd, then the flags (as a float).
 * With a gather, e0 and e1 are multiples of k.
 */
export function adam_update(
  x: usize, xo: usize, g: usize, m: usize, v: usize,
  e0: i32, e1: i32, k: i32, gc: i32, ga: i32, rule: usize, scratch: usize,
): void {
  const b1 = load<f32>(rule), b2 = load<f32>(rule, 4), a1 = load<f32>(rule, 8);
  const a2 = load<f32>(rule, 12), wd = load<f32>(rule, 16), eps = load<f32>(rule, 20);
  const stepSize = load<f32>(rule, 24), bc2 = load<f32>(rule, 28), shrink = load<f32>(rule, 32);
  const flags = <i32>load<f32>(rule, 36);
  const vb1 = f32x4.splat(b1), vb2 = f32x4.splat(b2), va1 = f32x4.splat(a1);
  const va2 = f32x4.splat(a2), vwd = f32x4.splat(wd), veps = f32x4.splat(eps);
  const vstep = f32x4.splat(stepSize), vbc2 = f32x4.splat(bc2), vshrink = f32x4.splat(shrink);
  if (gc == 0) {
    adam_run(x, xo, g, m, v, e0, e1, flags, b1, b2, a1, a2, wd, eps, stepSize, bc2, shrink,
      vb1, vb2, va1, va2, vwd, veps, vstep, vbc2, vshrink);
    return;
  }
  for (let row = e0; row < e1; row += k) {
    transpose_row(g, row, gc, ga, scratch);
    // The row's gradient, addressed as elements [row, row + k) of a contiguous one.
    adam_run(x, xo, scratch - (<usize>row << 2), m, v, row, row + k, flags,
      b1, b2, a1, a2, wd, eps, stepSize, bc2, shrink,
      vb1, vb2, va1, va2, vwd, veps, vstep, vbc2, vshrink);
  }
}

/** Elements [e0, e1) of adam_update with a contiguous gradient at g. */
@inline function adam_run(
  x: usize, xo: usize, g: usize, m: usize, v: usize, e0: i32, e1: i32, flags: i32,
  b1: f32, b2: f32, a1: f32, a2: f32, wd: f32, eps: f32, stepSize: f32, bc2: f32, shrink: f32,
  vb1: v128, vb2: v128, va1: v128, va2: v128, vwd: v128, veps: v128,
  vstep: v128, vbc2: v128, vshrink: v128,
): void {
  let e = e0;
  for (; e + 4 <= e1; e += 4) {
    const at = <usize>e << 2;
    adam4(x + at, xo + at, v128.load(g + at), m + at, v + at, flags,
      vb1, vb2, va1, va2, vwd, veps, vstep, vbc2, vshrink);
  }
  for (; e < e1; e++) {
    const at = <usize>e << 2;
    adam1(x + at, xo + at, load<f32>(g + at), m + at, v + at, flags,
      b1, b2, a1, a2, wd, eps, stepSize, bc2, shrink);
  }
}

// ---- Zeroing ---------------------------------------------------------------

/** Sets floats [e0, e1) at x to +0 (training's zeroGrad, split across threads). */
export function zero_fill(x: usize, e0: i32, e1: i32): void {
  memory.fill(x + (<usize>e0 << 2), 0, <usize>(e1 - e0) << 2);
}

// ---- SGD -------------------------------------------------------------------

@inline function sgd4(
  px: usize, pxo: usize, gi: v128, pb: usize, flags: i32,
  wd: v128, mo: v128, keep: v128, step: v128,
): void {
  const x = v128.load(px);
  let d = gi;
  if (flags & DECAY) d = fma64(d, wd, x);
  if (flags & MOMENTUM) {
    const b = flags & FIRST ? d : fma64(f32x4.mul(v128.load(pb), mo), keep, d);
    v128.store(pb, b);
    d = flags & NESTEROV ? fma64(d, mo, b) : b;
  }
  v128.store(pxo, fma64(x, step, d));
}

@inline function sgd1(
  px: usize, pxo: usize, gi: f32, pb: usize, flags: i32,
  wd: f32, mo: f32, keep: f32, step: f32,
): void {
  const x = load<f32>(px);
  let d = gi;
  if (flags & DECAY) d = fma1(d, wd, x);
  if (flags & MOMENTUM) {
    const b = flags & FIRST ? d : fma1(load<f32>(pb) * mo, keep, d);
    store<f32>(pb, b);
    d = flags & NESTEROV ? fma1(d, mo, b) : b;
  }
  store<f32>(pxo, fma1(x, step, d));
}

/**
 * PyTorch 1.13's SGD step on elements [e0, e1) of x, written to xo, with its
 * gradient g (gathered as above) and momentum buffer `buf` (x's layout; read
 * and written with MOMENTUM, only written with FIRST, which starts it from
 * the gradient). Scalars are sgd.ts's f32 constants, the 5 floats at `rule`:
 * wd, mo (momentum), keep = 1 - dampening, step = -lr, then the flags (as a
 * float). With a gather, e0 and e1 are multiples of k.
 */
export function sgd_update(
  x: usize, xo: usize, g: usize, buf: usize,
  e0: i32, e1: i32, k: i32, gc: i32, ga: i32, rule: usize, scratch: usize,
): void {
  const wd = load<f32>(rule), mo = load<f32>(rule, 4), keep = load<f32>(rule, 8);
  const step = load<f32>(rule, 12), flags = <i32>load<f32>(rule, 16);
  const vwd = f32x4.splat(wd), vmo = f32x4.splat(mo);
  const vkeep = f32x4.splat(keep), vstep = f32x4.splat(step);
  if (gc == 0) {
    sgd_run(x, xo, g, buf, e0, e1, flags, wd, mo, keep, step, vwd, vmo, vkeep, vstep);
    return;
  }
  for (let row = e0; row < e1; row += k) {
    transpose_row(g, row, gc, ga, scratch);
    sgd_run(x, xo, scratch - (<usize>row << 2), buf, row, row + k, flags,
      wd, mo, keep, step, vwd, vmo, vkeep, vstep);
  }
}

/** Elements [e0, e1) of sgd_update with a contiguous gradient at g. */
@inline function sgd_run(
  x: usize, xo: usize, g: usize, buf: usize, e0: i32, e1: i32, flags: i32,
  wd: f32, mo: f32, keep: f32, step: f32, vwd: v128, vmo: v128, vkeep: v128, vstep: v128,
): void {
  let e = e0;
  for (; e + 4 <= e1; e += 4) {
    const at = <usize>e << 2;
    sgd4(x + at, xo + at, v128.load(g + at), buf + at, flags, vwd, vmo, vkeep, vstep);
  }
  for (; e < e1; e++) {
    const at = <usize>e << 2;
    sgd1(x + at, xo + at, load<f32>(g + at), buf + at, flags, wd, mo, keep, step);
  }
}
