// Optimizer updates over elements [i0, i1) of a parameter staged in Wasm
// memory, exactly as src/train/sgd.ts and adam.ts compute them in
// TypeScript: every Math.fround there is one f64 -> f32 rounding here, every
// other operation is done in f64 (products of two floats are exact there), so
// the bits are the same. Elements are independent: any split across threads
// gives the same bits.

@inline function f(x: f64): f64 {
  return <f64><f32>x;
}

/**
 * PyTorch 1.13's Adam (`decoupled` 0) or AdamW (1) step on x, with gradient
 * g and moments m, v (f32 arrays). The scalars are the f32 constants of
 * adam.ts (b1, b2, a1 = 1 - beta1, a2 = 1 - beta2, wd, eps, stepSize =
 * -lr / (1 - beta1^t), bc2 = sqrt(1 - beta2^t), shrink = 1 - lr * wd);
 * `decay` says whether the weight decay is non-zero.
 */
export function adam_update(
  x: usize, g: usize, m: usize, v: usize, i0: i32, i1: i32,
  b1: f64, b2: f64, a1: f64, a2: f64, wd: f64, eps: f64,
  stepSize: f64, bc2: f64, shrink: f64, decoupled: i32, decay: i32,
): void {
  for (let i = i0; i < i1; i++) {
    const at = <usize>i << 2;
    let xi = <f64>load<f32>(x + at);
    let gi = <f64>load<f32>(g + at);
    if (decoupled) {
      if (decay) xi = f(xi * shrink);
    } else if (decay) {
      gi = f(gi + wd * xi);
    }
    const mi = f(f(<f64>load<f32>(m + at) * b1) + a1 * gi);
    const vi = f(f(<f64>load<f32>(v + at) * b2) + f(a2 * gi) * gi);
    store<f32>(m + at, <f32>mi);
    store<f32>(v + at, <f32>vi);
    const denom = f(f(f(Math.sqrt(vi)) / bc2) + eps);
    store<f32>(x + at, <f32>(xi + stepSize * f(mi / denom)));
  }
}

/**
 * PyTorch 1.13's SGD step on x with gradient g and momentum buffer `buf`
 * (ignored when `momentum` is 0; `first` 1 starts it from the gradient).
 * Scalars as in sgd.ts: wd, m (momentum), keep = 1 - dampening, step = -lr;
 * `decay` says whether the weight decay is non-zero.
 */
export function sgd_update(
  x: usize, g: usize, buf: usize, i0: i32, i1: i32,
  wd: f64, m: f64, keep: f64, step: f64,
  decay: i32, momentum: i32, first: i32, nesterov: i32,
): void {
  for (let i = i0; i < i1; i++) {
    const at = <usize>i << 2;
    const xi = <f64>load<f32>(x + at);
    let d = <f64>load<f32>(g + at);
    if (decay) d = f(d + wd * xi);
    if (momentum) {
      const b = first ? d : f(f(<f64>load<f32>(buf + at) * m) + keep * d);
      store<f32>(buf + at, <f32>b);
      d = nesterov ? f(d + m * b) : b;
    }
    store<f32>(x + at, <f32>(xi + step * d));
  }
}
