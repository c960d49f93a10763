/**
 * Weight packing shared by every backend: a PyTorch weight (conv OIHW or
 * linear [out, in]) and its bias become GEMM panels of 8 output columns,
 * `[bias[8], B[0, 8], ..., B[K-1, 8]]`, where row k of B is ordered like the
 * NHWC activations the kernels read (kh, kw, c for a convolution). Packing
 * happens once, when weights are set; unpacking serves `stateDict()`.
 *
 * @module
 */

import type { WinogradVariant } from "../graph/ops.ts";

/** Output columns per panel (the micro-kernel's NR). */
export const PANEL_WIDTH = 8;

/** Floats a packed matrix of depth k and n columns occupies. */
export function packedSize(k: number, n: number): number {
  return Math.ceil(n / PANEL_WIDTH) * (k + 1) * PANEL_WIDTH;
}

/**
 * How row k of the packed B maps to PyTorch's weight: `source(k)` is the
 * column of the weight flattened as [n, K] (for a conv, OIHW flattened).
 *
 * @example
 * ```ts
 * import { convRowOrder, type RowOrder } from "./pack.ts";
 * const order: RowOrder = convRowOrder(3, 7, 7);
 * console.log(order(1)); // 49
 * ```
 */
export type RowOrder = (k: number) => number;

/** Row order of a convolution: packed k = (kh * KW + kw) * C + c, PyTorch k = (c * KH + kh) * KW + kw. */
export function convRowOrder(c: number, kh: number, kw: number): RowOrder {
  return (k) => {
    const ch = k % c;
    const tap = (k - ch) / c;
    return ch * kh * kw + tap;
  };
}

/** Identity row order (a linear layer reading a dense vector). */
export const identityRowOrder: RowOrder = (k) => k;

/**
 * Row order of a linear layer reading an NHWC-flattened [h, w, c] input whose
 * PyTorch weight expects the NCHW flattening [c, h, w].
 */
export function nhwcFlattenRowOrder(c: number, h: number, w: number): RowOrder {
  return (k) => {
    const ch = k % c;
    const pixel = (k - ch) / c;
    return ch * h * w + pixel;
  };
}

/**
 * Packs `weight` ([n, k] row-major after PyTorch's flattening) and `bias` [n]
 * into `dst` at `offset`.
 */
export function packGemm(
  dst: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  k: number,
  n: number,
  order: RowOrder,
): void {
  const panels = Math.ceil(n / PANEL_WIDTH);
  const source = rowSources(k, order);
  for (let p = 0; p < panels; p++) {
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    for (let j = 0; j < PANEL_WIDTH; j++) {
      const col = p * PANEL_WIDTH + j;
      if (col >= n) {
        for (let r = 0; r <= k; r++) dst[base + r * PANEL_WIDTH + j] = 0;
        continue;
      }
      dst[base + j] = bias[col];
      gatherColumn(dst, base + PANEL_WIDTH + j, weight, col * k, source);
    }
  }
}

/**
 * `order(r)` for every packed row `r` of depth `k`: the PyTorch column each
 * row reads (cached per order function and depth; treat it as read-only).
 */
export function rowSources(k: number, order: RowOrder): Int32Array {
  let byDepth = sourceCache.get(order);
  if (!byDepth) sourceCache.set(order, byDepth = new Map());
  let sources = byDepth.get(k);
  if (!sources) {
    sources = Int32Array.from({ length: k }, (_, i) => order(i));
    byDepth.set(k, sources);
  }
  return sources;
}

const sourceCache = new WeakMap<RowOrder, Map<number, Int32Array>>();

// One packed column: dst[at + 8r] = weight[row + source[r]]. A function of its
// own so V8 optimises it after a few calls rather than interpreting the first layers.
function gatherColumn(
  dst: Float32Array,
  at: number,
  weight: Float32Array,
  row: number,
  source: Int32Array,
): void {
  for (let r = 0; r < source.length; r++) dst[at + r * PANEL_WIDTH] = weight[row + source[r]];
}

/** The inverse of {@linkcode packGemm}: fills `weight` [n, k] and `bias` [n]. */
export function unpackGemm(
  src: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  k: number,
  n: number,
  order: RowOrder,
): void {
  const source = rowSources(k, order);
  for (let col = 0; col < n; col++) {
    const p = Math.floor(col / PANEL_WIDTH), j = col % PANEL_WIDTH;
    const base = offset + p * (k + 1) * PANEL_WIDTH;
    bias[col] = src[base + j];
    const row = col * k;
    for (let r = 0; r < k; r++) weight[row + source[r]] = src[base + (r + 1) * PANEL_WIDTH + j];
  }
}

/** Transform tile (n x n), output tile (m x m) and kernel (r x r) of each Winograd algorithm. */
export const WINOGRAD_SHAPES: Readonly<
  Record<WinogradVariant, { readonly n: 4 | 6; readonly m: 2 | 4; readonly r: 3 | 5 }>
> = {
  f4x3: { n: 6, m: 4, r: 3 },
  f2x5: { n: 6, m: 2, r: 5 },
  f2x3: { n: 4, m: 2, r: 3 },
};

/** Floats of a Winograd weight region: bias (padded to 4), then n^2 packed matrices. */
export function winogradSize(c: number, oc: number, variant: WinogradVariant): number {
  const { n } = WINOGRAD_SHAPES[variant];
  return Math.ceil(oc / 4) * 4 + n * n * packedSize(c, oc);
}

/**
 * Packs an r x r convolution (OIHW `weight` [oc, c, r, r], `bias` [oc]) for
 * the kernel of `variant` (`winograd_f4x3_bias_relu`, `winograd_f2x5_bias_relu`
 * or `winograd_f2x3_bias_relu`): U = G g G^T per (out, in) channel pair,
 * computed in f64, written as n^2 GEMM-packed matrices of depth c (zero bias
 * slots) after the bias.
 */
export function packWinograd(
  dst: Float32Array,
  offset: number,
  weight: Float32Array,
  bias: Float32Array,
  c: number,
  oc: number,
  variant: WinogradVariant,
): void {
  const { n, r } = WINOGRAD_SHAPES[variant];
  const biasFloats = Math.ceil(oc / 4) * 4;
  const size = packedSize(c, oc);
  const g = winogradG(n, r);
  const gg = new Float64Array(n * r);
  dst.fill(0, offset, offset + winogradSize(c, oc, variant));
  dst.set(bias.subarray(0, oc), offset);
  const base = offset + biasFloats;
  for (let o = 0; o < oc; o++) {
    const column = base + Math.floor(o / PANEL_WIDTH) * (c + 1) * PANEL_WIDTH +
      (o % PANEL_WIDTH) + PANEL_WIDTH;
    for (let ci = 0; ci < c; ci++) {
      const kernel = (o * c + ci) * r * r;
      // gg = G g (n x r), then U = gg G^T (n x n), U[i][j] to matrix n i + j.
      for (let i = 0; i < n; i++) {
        for (let col = 0; col < r; col++) {
          let sum = 0;
          for (let t = 0; t < r; t++) sum += g[i * r + t] * weight[kernel + t * r + col];
          gg[i * r + col] = sum;
        }
      }
      const row = column + ci * PANEL_WIDTH;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let sum = 0;
          for (let t = 0; t < r; t++) sum += gg[i * r + t] * g[j * r + t];
          dst[row + (i * n + j) * size] = sum;
        }
      }
    }
  }
}

/**
 * G (n x r) on the points 0, 1, -1 (, 2, -2) and infinity: row j is
 * a_j^k / prod_{l != j} (a_j - a_l), the last row picks the leading
 * coefficient. The input transform B^T (asm/winograd.ts) depends only on the
 * points, so F(4x4, 3x3) and F(2x2, 5x5) share it.
 */
function winogradG(n: number, r: number): Float64Array {
  const points = [0, 1, -1, 2, -2].slice(0, n - 1);
  const g = new Float64Array(n * r);
  points.forEach((a, j) => {
    const norm = points.reduce((p, b) => (b === a ? p : p * (a - b)), 1);
    for (let k = 0; k < r; k++) g[j * r + k] = a ** k / norm;
  });
  g[(n - 1) * r + r - 1] = 1;
  return g;
}
