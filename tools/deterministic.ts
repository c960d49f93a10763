/**
 * Deterministic pseudo-random tensors shared by the tests, the fixture script
 * (`tools/deterministic.py` implements the same formula) and the benches, so
 * that whole-model fixtures need no committed weight file.
 *
 * Formula: `u(name, i) = fmix32((i + imul(fnv1a(name) | 1, 0x9E3779B9)) mod 2^32) / 2^32 - 0.5`
 * (murmur3's finaliser over 32-bit unsigned integers), so `u` is uniform in
 * [-0.5, 0.5). A tensor named `name` with `n` elements holds
 * `2 * scale * u(name, i)` for `i` in `0..n-1`.
 *
 * @module
 */

import { Tensor } from "../src/tensor.ts";

/** FNV-1a over the UTF-8 bytes of `text`, as an unsigned 32-bit integer. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Murmur3's 32-bit finaliser. */
export function fmix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** `n` values uniform in [-scale, scale) named by `name`. */
export function uniform(name: string, n: number, scale: number): Float32Array {
  const base = Math.imul(fnv1a(name) | 1, 0x9e3779b9);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = 2 * scale * (fmix32((i + base) >>> 0) / 4294967296 - 0.5);
  }
  return out;
}

/**
 * A deterministic tensor for the state-dict entry `key` of shape `shape`:
 * weights of rank 4 (conv, OIHW) scale by sqrt(6 / fan_in) (He uniform),
 * weights of rank 2 (linear) by sqrt(3 / fan_in), everything else by 0.1;
 * BatchNorm scales and running variances are centred on 1 (1 + 0.1u, 1 + 0.25u).
 */
export function deterministicParameter(key: string, shape: readonly number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (key.endsWith("running_var") || key.endsWith("bn.weight")) {
    const spread = key.endsWith("running_var") ? 0.25 : 0.1;
    return new Tensor(uniform(key, n, spread).map((v) => 1 + v), shape);
  }
  let scale = 0.1;
  if (key.endsWith("weight") && shape.length === 4) {
    scale = Math.sqrt(6 / (shape[1] * shape[2] * shape[3]));
  } else if (key.endsWith("weight") && shape.length === 2) {
    scale = Math.sqrt(3 / shape[1]);
  }
  return new Tensor(uniform(key, n, scale), shape);
}

/** A deterministic state dict with the given keys and shapes. */
export function deterministicStateDict(
  shapes: Iterable<readonly [string, readonly number[]]>,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, shape] of shapes) out.set(key, deterministicParameter(key, shape));
  return out;
}

/** A deterministic input in [-1, 1) named `name`. */
export function deterministicInput(name: string, shape: readonly number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(uniform(name, n, 1), shape);
}
